"""Training and evaluation of the colourization nets (Parts A-C).

The whole data set (5000 x 32 x 32 greyscale inputs and colour-index targets) is a few
tens of MB, so it lives on the training device as tensors: batching is indexing,
augmentation is a vectorised flip, and nothing is converted per batch in Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from colorseg.colour.recipes import ColourRecipe
from colorseg.registry import create_model
from colorseg.training import (
    SINGLE,
    Checkpointing,
    EpochHook,
    LossFn,
    Prepare,
    Stage,
    build_optimizer,
    evaluate,
    fit,
    train_one_epoch,
)
from colorseg.training.distributed import DistContext


def _pixel_rows(per_pixel: torch.Tensor) -> torch.Tensor:
    """[B, K, H, W] -> [B*H*W, K]: a view, no copy, for the channels-last tensors the nets make."""
    return per_pixel.permute(0, 2, 3, 1).reshape(-1, per_pixel.shape[1])


def colour_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-pixel cross-entropy (mean, or sum with ``reduction="sum"``); logits [B, K, H, W],
    targets int64 [B, H, W].

    The nets run channels-last, where the colour scores of a pixel are adjacent in memory:
    viewed as [B*H*W, K] rows the loss needs no copy and a row-wise softmax, whereas
    cross_entropy over dim 1 first converts the whole logit tensor to NCHW and back
    (0.21 ms -> 0.10 ms per image, forward and backward, on one core).
    """
    return F.cross_entropy(_pixel_rows(logits), targets.reshape(-1), reduction=reduction)


def distillation_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    soft_targets: torch.Tensor,
    weight: float,
    hard: torch.Tensor | None = None,
) -> torch.Tensor:
    """(1 - weight) * cross-entropy with the palette labels + weight * cross-entropy with a
    teacher's colour distributions soft_targets [B, K, H, W] (KL divergence plus a constant).
    ``hard`` is ``colour_loss(logits, targets)`` when the caller has computed it already."""
    if hard is None:
        hard = colour_loss(logits, targets)
    soft = -(_pixel_rows(soft_targets) * F.log_softmax(_pixel_rows(logits), dim=1)).sum(dim=1).mean()
    return (1 - weight) * hard + weight * soft


@torch.inference_mode()
def teacher_targets(teacher: nn.Module, grey: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's colour distributions for grey [N,1,H,W] and for its mirror image, each
    float16 [N,K,H,W] in its own orientation: a flipped training input gets the teacher's
    answer for exactly that input, not a flipped copy of another one."""
    teacher.eval()

    def probabilities(images: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [teacher(images[i : i + batch_size]).softmax(dim=1).half() for i in range(0, len(images), batch_size)]
        )

    return probabilities(grey), probabilities(grey.flip(-1))


def _flip_half(
    grey: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mirror a random half of the batch left-right, inputs and targets alike; also returns
    which samples were mirrored."""
    flip = torch.rand(len(grey), generator=generator, device=generator.device) < 0.5
    grey = torch.where(flip[:, None, None, None], grey.flip(-1), grey)
    labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
    return grey, labels, flip


def colour_batch(
    recipe: ColourRecipe, generator: torch.Generator, soft_targets: tuple[torch.Tensor, torch.Tensor] | None = None
) -> Prepare:
    """The colour nets' ``prepare`` for :func:`colorseg.training.train_one_epoch`: the recipe's
    flips and, when distilling, the teacher's soft targets of exactly the (mirrored or not)
    inputs; the loss target is then ``(labels, soft)``."""

    def prepare(grey: torch.Tensor, labels: torch.Tensor, index: torch.Tensor):
        flip = None
        if recipe.hflip:
            grey, labels, flip = _flip_half(grey, labels, generator)
        if soft_targets is None:
            return grey, labels
        soft = soft_targets[0][index]
        if flip is not None:
            soft = torch.where(flip[:, None, None, None], soft_targets[1][index], soft)
        return grey, (labels, soft.float())

    return prepare


def colour_objective(recipe: ColourRecipe) -> LossFn:
    """The loss the recipe minimises: cross-entropy, or with a teacher the distillation mix,
    reporting the plain cross-entropy against the labels either way."""
    if recipe.teacher is None:
        return colour_loss

    def loss(logits: torch.Tensor, target: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        labels, soft = target
        hard = colour_loss(logits, labels)
        return distillation_loss(logits, labels, soft, recipe.distill_weight, hard), hard

    return loss


def train_colour_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    grey: torch.Tensor,
    labels: torch.Tensor,
    recipe: ColourRecipe,
    generator: torch.Generator,
    soft_targets: tuple[torch.Tensor, torch.Tensor] | None = None,
    ctx: DistContext = SINGLE,
) -> float:
    """One epoch of colorseg.training's loop over (grey [N,1,H,W], labels [N,H,W]) as the recipe says
    (data order or shuffled, flips, distillation when ``soft_targets`` come from
    :func:`teacher_targets`); returns the mean training cross-entropy against the labels."""
    order = torch.randperm(len(grey), generator=generator, device=generator.device) if recipe.shuffle else None
    return train_one_epoch(
        model,
        optimizer,
        colour_objective(recipe) if soft_targets is not None else colour_loss,
        grey,
        labels,
        batch_size=recipe.batch_size,
        order=order,
        prepare=colour_batch(recipe, generator, soft_targets),
        scheduler=scheduler,
        ctx=ctx,
    )


def colour_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Summed per-pixel cross-entropy and count of pixels whose argmax is the target colour."""
    return {
        "loss": colour_loss(logits, labels, reduction="sum").double(),
        "correct": (logits.argmax(dim=1) == labels).sum(),
    }


def evaluate_colour_net(
    model: nn.Module, grey: torch.Tensor, labels: torch.Tensor, batch_size: int = 100, ctx: DistContext = SINGLE
) -> dict[str, float]:
    """Mean per-pixel cross-entropy and pixel accuracy (fraction of argmax == target).

    Batches of 100 keep a layer's activations in the CPU caches: scoring 1000 images took
    half the time of batches of 500 on a 2-core CPU."""
    sums = evaluate(model, colour_metrics, grey, labels, batch_size=batch_size, ctx=ctx)
    pixels = labels.numel()
    return {"loss": sums["loss"].item() / pixels, "accuracy": sums["correct"].item() / pixels}


def build_colour_optimizer(
    model: nn.Module, recipe: ColourRecipe, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """:func:`colorseg.training.build_optimizer` with the recipe's settings."""
    return build_optimizer(
        model.parameters(),
        recipe.lr,
        weight_decay=recipe.weight_decay,
        schedule=recipe.schedule,
        epochs=recipe.epochs,
        steps_per_epoch=steps_per_epoch,
    )


def train_colour_net(
    architecture: str,
    recipe: ColourRecipe,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    num_colours: int,
    hooks: Sequence[EpochHook] = (),
    teacher: nn.Module | None = None,
    compile_model: bool = False,
    ctx: DistContext = SINGLE,
    checkpointing: Checkpointing = Checkpointing(),
) -> tuple[nn.Module, list[dict]]:
    """Train ``architecture`` from scratch through :func:`colorseg.training.fit`; returns the model
    and one history row per epoch (train_loss, val_loss, val_accuracy, seconds).

    ``train``/``val`` are (grey float [N,1,H,W], labels int64 [N,H,W]) already on ``device``;
    ``teacher`` is the trained net the recipe's ``teacher`` names, when it names one.
    ``compile_model`` runs training and evaluation through ``torch.compile`` (needs a C++
    compiler on CPU; the first epoch pays for compiling); the returned module is the plain one.
    The stage is ``colour_<recipe>_<architecture>`` (checkpoints, resume); ``hooks`` run after
    every epoch (training replays).
    """
    soft_targets = None
    if recipe.teacher is not None:
        if teacher is None:
            raise ValueError(
                f"recipe {recipe.name!r} distils {architecture} from {recipe.teacher}: pass the trained teacher"
            )
        soft_targets = teacher_targets(teacher, train[0])
    torch.manual_seed(recipe.seed)
    model = create_model(architecture, kernel=recipe.kernel, num_filters=recipe.num_filters, num_colours=num_colours)
    # channels_last lets oneDNN/cuDNN pick their fastest convolution kernels (1.4x on
    # PoolUpsampleNet on a 2-core CPU); it changes memory layout only, not results.
    model.to(device, memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed(recipe.seed)
    optimizer, scheduler = build_colour_optimizer(model, recipe, math.ceil(len(train[0]) / recipe.batch_size))

    def train_epoch(runner: nn.Module, epoch: int) -> dict[str, float]:
        return {
            "train_loss": train_colour_epoch(runner, optimizer, scheduler, *train, recipe, generator, soft_targets, ctx)
        }

    def after_epoch(runner: nn.Module, epoch: int) -> dict[str, float]:
        # Under DDP the plain module scores (every rank its slice); otherwise the (compiled) runner.
        metrics = evaluate_colour_net(runner if not ctx.distributed else model, *val, ctx=ctx)
        return {"val_loss": metrics["loss"], "val_accuracy": metrics["accuracy"]}

    stage = Stage(
        f"colour_{recipe.name}_{architecture}",
        model,
        optimizer,
        recipe.epochs,
        train_epoch,
        after_epoch,
        scheduler=scheduler,
        generators={"batches": generator},
        key=recipe.to_dict(),
        compile=compile_model,
    )
    history = fit(stage, ctx=ctx, checkpointing=checkpointing, hooks=hooks)
    return model, history
