"""The one training loop of both halves: ``fit`` (epochs), ``train_one_epoch`` (steps), ``evaluate``
and ``build_optimizer``.

Every training stage (a colour net, the segmentation body, each head) is a :class:`Stage`: its model,
optimizer, number of epochs, the function that runs one epoch's steps (through ``train_one_epoch``)
and the one that scores it afterwards. :func:`fit` owns everything else: resuming from a checkpoint,
DDP wrapping, the progress bar, the history rows, timing, checkpoints and per-epoch hooks (training
replays).

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

Data-parallel (``ctx`` from :func:`colorseg.training.distributed.setup`, see distributed.py): every rank
draws the same global batch, runs ``prepare`` on all of it (so per-sample random draws keep
every rank's generators in step and a single process gives exactly the same numbers), keeps
its own slice, and scales its loss so that DDP's gradient average is the global batch's.
Forward and loss run under :func:`colorseg.training.autocast_for` (bf16 on CUDA, nothing on CPU).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from colorseg.training.checkpoint import Checkpointing, resume_from, save_progress
from colorseg.training.distributed import DistContext, autocast_for

Prepare = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, object]]
LossFn = Callable[[torch.Tensor, object], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]
MetricFn = Callable[[torch.Tensor, object], dict[str, torch.Tensor]]
Scheduler = torch.optim.lr_scheduler.LRScheduler
SINGLE = DistContext()  # one process: every ctx method is a no-op
log = logging.getLogger(__name__)


def _take(batch, rows: slice):
    """``rows`` of a prepared batch: a tensor, or a tuple of them (e.g. labels and soft targets; None stays)."""
    if batch is None:
        return None
    if isinstance(batch, tuple):
        return tuple(_take(part, rows) for part in batch)
    return batch[rows]


def _local_rows(n: int, ctx: DistContext) -> slice:
    """This rank's contiguous rows of a global batch of ``n`` (as ``ctx.shard`` slices it)."""
    if ctx.world_size == 1:
        return slice(None)
    mine = ctx.shard(torch.arange(n))
    return slice(int(mine[0]), int(mine[0]) + len(mine)) if len(mine) else slice(0, 0)


def identity(
    inputs: torch.Tensor, targets: torch.Tensor, index: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
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
    ctx: DistContext = SINGLE,
    sharded_prepare: bool = False,
    min_batch: int = 1,
) -> float:
    """One pass over (inputs, targets) in ``order`` (else shuffled by ``generator``, else in
    order); returns the mean reported loss over the samples (of every rank).

    ``sharded_prepare``: ``prepare(inputs[index], targets[index], index, rows)`` returns only
    this rank's ``rows`` of the global batch, drawing its random numbers for the whole batch
    and slicing them (segmentation's augmentation: each rank resamples only its own images).
    A last global batch that would leave a rank fewer than ``min_batch`` samples is merged
    into the one before it: a rank with no sample has no loss to take part in DDP's
    all-reduce, and a BatchNorm after global pooling (``min_batch=2``) cannot normalise one
    value per channel."""
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    count = 0
    chunks = batches(len(inputs), batch_size, generator, order)
    smallest = min_batch * ctx.world_size
    if smallest > 1:
        chunks = list(chunks)
        if len(chunks) > 1 and len(chunks[-1]) < smallest:
            chunks[-2:] = [torch.cat(chunks[-2:])]
    for index in chunks:
        index = index.to(inputs.device)
        rows = _local_rows(len(index), ctx)
        if sharded_prepare:
            x, y = prepare(inputs[index], targets[index], index, rows)
        else:
            x, y = prepare(inputs[index], targets[index], index)
            x, y = _take(x, rows), _take(y, rows)
        local = len(x)
        with autocast_for(inputs.device):
            loss = loss_fn(model(x), y)
        objective, reported = loss if isinstance(loss, tuple) else (loss, loss)
        optimizer.zero_grad(set_to_none=True)
        (objective * ctx.loss_scale(local, len(index)) if ctx.world_size > 1 else objective).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += reported.detach().double() * local
        count += local
    return ctx.reduce_metrics({"loss": total}, count)["loss"]


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    metric_fn: MetricFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int,
    prepare: Prepare = identity,
    ctx: DistContext = SINGLE,
) -> dict[str, torch.Tensor]:
    """Eval mode, in order: each metric summed over all batches (each rank scores its slice;
    the sums are then added over the ranks), as device tensors (the caller divides by its
    count: images, pixels, ...). Pass the plain module, after ``ctx.sync_buffers``."""
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    # Fewer samples than ranks: every rank scores all of them (a rank with none would skip
    # the all-reduce below); the sums are then not added over the ranks.
    split = ctx.distributed and len(inputs) >= ctx.world_size
    mine = ctx.shard(torch.arange(len(inputs))) if split else torch.arange(len(inputs))
    for index in mine.split(batch_size):
        index = index.to(inputs.device)
        x, y = prepare(inputs[index], targets[index], index)
        for name, value in metric_fn(model(x), y).items():
            sums[name] = sums[name] + value if name in sums else value
    if split:
        sums = {name: ctx.all_reduce_mean(value.double()) * ctx.world_size for name, value in sums.items()}
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
    one-cycle schedule peaking at ``lr`` over ``epochs`` x ``steps_per_epoch`` steps.
    ``parameters`` may be groups (dicts) with an ``lr_scale``: that group peaks at ``lr * lr_scale``."""
    groups = list(parameters)
    if groups and isinstance(groups[0], dict):
        groups = [
            {**{k: v for k, v in g.items() if k != "lr_scale"}, "lr": lr * g.get("lr_scale", 1.0)} for g in groups
        ]
        peaks = [group["lr"] for group in groups]
    else:
        peaks = lr
    if schedule == "constant":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay), None
    if schedule == "onecycle":
        optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peaks, epochs=epochs, steps_per_epoch=steps_per_epoch
        )
        return optimizer, scheduler
    raise ValueError(f"unknown schedule {schedule!r}; known: constant, onecycle")


# --- the epoch loop ------------------------------------------------------------------------

EpochHook = Callable[[int, dict, nn.Module], None]


@dataclass
class Stage:
    """One training stage as :func:`fit` runs it; the stage supplies only its step and its scoring.

    ``train_epoch(runner, epoch)`` runs one epoch's steps on ``runner`` (the model, DDP-wrapped when
    distributed) and returns the row's training figures ({"train_loss": ...}); ``after_epoch(runner,
    epoch)``, once the ranks' buffers agree, does the epoch's upkeep and scoring and returns its
    figures (validation metrics, or {} on epochs it does not score). ``key`` is what a checkpoint
    must have been made with (recipe, seed, data...)."""

    name: str  # checkpoint stage (runs/checkpoints/<name>/) and progress label
    model: nn.Module  # the plain module: what checkpoints save and hooks see
    optimizer: torch.optim.Optimizer
    epochs: int
    train_epoch: Callable[[nn.Module, int], dict[str, float]]
    after_epoch: Callable[[nn.Module, int], dict[str, float]] | None = None
    scheduler: Scheduler | None = None
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    key: dict = field(default_factory=dict)
    # A stage whose weights are written only with later stages' (the segmentation body and heads,
    # one weight set) keeps its checkpoint after its last epoch, so resuming a later stage does not redo it.
    keep_last: bool = False
    sync_batchnorm: bool = False  # SyncBatchNorm under DDP (CUDA only)
    compile: bool = False  # train and score through torch.compile (the checkpointed module stays plain)


def fit(
    stage: Stage,
    *,
    ctx: DistContext = SINGLE,
    checkpointing: Checkpointing = Checkpointing(),
    hooks: Sequence[EpochHook] = (),
) -> list[dict]:
    """Train ``stage`` for its epochs (from its checkpoint when resuming); returns one history row per
    epoch: ``{"epoch", **train_epoch's, **after_epoch's, "seconds"}``. After each epoch rank 0 saves
    a checkpoint, then every ``hook(epoch, row, model)`` runs (hooks must draw no random numbers and
    leave the model's mode as they found it, so that recording a replay never changes the weights)."""
    state = {
        "model": stage.model,
        "optimizer": stage.optimizer,
        "scheduler": stage.scheduler,
        "generators": stage.generators,
    }
    history, start = resume_from(checkpointing, stage.name, stage.key, **state)
    runner = ctx.wrap(stage.model, sync_batchnorm=stage.sync_batchnorm and ctx.device.type == "cuda")
    # torch.compile shares parameters with the plain module: one fixed-shape graph per batch shape.
    runner = torch.compile(runner, dynamic=False) if stage.compile else runner
    progress = tqdm(
        range(start, stage.epochs + 1),
        desc=stage.name,
        unit="epoch",
        disable=not ctx.is_main,
        initial=start - 1,
        total=stage.epochs,
    )
    for epoch in progress:
        started = time.perf_counter()
        row = {"epoch": epoch, **stage.train_epoch(runner, epoch)}
        ctx.sync_buffers(stage.model)  # rank 0's BatchNorm statistics, before scoring and saving
        if stage.after_epoch is not None:
            row.update(stage.after_epoch(runner, epoch))
        row["seconds"] = time.perf_counter() - started
        history.append(row)
        save_progress(
            checkpointing,
            stage.name,
            ctx,
            epoch,
            stage.epochs,
            {"recipe": stage.key, "history": history},
            keep_last=stage.keep_last,
            **state,
        )
        if ctx.is_main:
            log.info(
                "%s %s",
                stage.name,
                " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
            )
        for hook in hooks:
            hook(epoch, row, stage.model)
    return history
