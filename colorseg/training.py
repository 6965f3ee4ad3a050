"""The one training loop of both halves: ``train_one_epoch``, ``evaluate`` and ``build_optimizer``.

Data are whole tensors already on the training device; a batch is an index tensor into them
(shuffled, in order, or a given ``order`` such as a balanced epoch of a mixture). What differs
between the colour nets and the segmentation body and heads is passed in, in the style of
torchvision's ``references/segmentation``:

- ``prepare(inputs[index], targets[index], index) -> (model input, loss target)``: per-batch
  work such as flips, augmentation, normalisation or looking up a teacher's soft targets;
- ``loss_fn(output, loss target)``: a loss tensor, or ``(objective, reported)`` when the value
  to report differs from the one to minimise (distillation reports the plain cross-entropy);
- ``metric_fn(output, target) -> {name: sum over the batch}`` for :func:`evaluate`.

No per-batch host sync: losses and metrics are accumulated in device tensors and read once
per epoch, so a GPU never waits for the host inside an epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

Prepare = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, object]]
LossFn = Callable[[torch.Tensor, object], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]
MetricFn = Callable[[torch.Tensor, object], dict[str, torch.Tensor]]
Scheduler = torch.optim.lr_scheduler.LRScheduler


def identity(inputs: torch.Tensor, targets: torch.Tensor, index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    return inputs, targets


def batches(
    n: int, batch_size: int, generator: torch.Generator | None = None, order: torch.Tensor | None = None
) -> Iterator[torch.Tensor]:
    """Index tensors covering range(n): shuffled with ``generator`` (on its device), in order
    without it; or the given ``order``."""
    if order is None:
        if generator is not None:
            order = torch.randperm(n, generator=generator, device=generator.device)
        else:
            order = torch.arange(n)
    yield from order.split(batch_size)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator | None = None,
    order: torch.Tensor | None = None,
    prepare: Prepare = identity,
    scheduler: Scheduler | None = None,
) -> float:
    """One pass over (inputs, targets) in ``order`` (else shuffled by ``generator``, else in
    order); returns the mean reported loss over the samples."""
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    count = 0
    for index in batches(len(inputs), batch_size, generator, order):
        index = index.to(inputs.device)
        x, y = prepare(inputs[index], targets[index], index)
        loss = loss_fn(model(x), y)
        objective, reported = loss if isinstance(loss, tuple) else (loss, loss)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += reported.detach().double() * len(index)
        count += len(index)
    return total.item() / count


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    metric_fn: MetricFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int,
    prepare: Prepare = identity,
) -> dict[str, torch.Tensor]:
    """Eval mode, in order: each metric summed over all batches, as device tensors (the caller
    divides by its count: images, pixels, ...)."""
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for index in batches(len(inputs), batch_size):
        index = index.to(inputs.device)
        x, y = prepare(inputs[index], targets[index], index)
        for name, value in metric_fn(model(x), y).items():
            sums[name] = sums[name] + value if name in sums else value
    return sums


def build_optimizer(
    parameters,
    lr: float,
    *,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
) -> tuple[torch.optim.Optimizer, Scheduler | None]:
    """``constant``: the assignment's Adam at ``lr``, no scheduler. ``onecycle``: AdamW with a
    one-cycle schedule peaking at ``lr`` over ``epochs`` x ``steps_per_epoch`` steps."""
    if schedule == "constant":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay), None
    if schedule == "onecycle":
        optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
        return optimizer, scheduler
    raise ValueError(f"unknown schedule {schedule!r}; known: constant, onecycle")
