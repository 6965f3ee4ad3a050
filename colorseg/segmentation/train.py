"""Segmentation training of the whole body from scratch, and the validation metrics it shares
with Part D's heads on cached features (:mod:`colorseg.segmentation.heads`).

Data are tensors already on the device; a batch is an index tensor into them, and any
per-batch work (augmentation, normalisation) is one batched call, never a Python loop
over samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation.augment import Augmentation, apply_augmentation, draw_augmentation
from colorseg.segmentation.data import SegmentationTensors
from colorseg.segmentation.models import SegmentationNet
from colorseg.segmentation.sources import balanced_epoch
from colorseg.training import (
    SINGLE,
    Checkpointing,
    LossFn,
    MetricFn,
    Prepare,
    Stage,
    batches,
    build_optimizer,
    evaluate,
    fit,
    identity,
    train_one_epoch,
)
from colorseg.training.distributed import DistContext

BODY_STAGE = "seg_body"


def plain_images(
    images: torch.Tensor, masks: torch.Tensor, index: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """No augmentation: uint8 images -> floats in 0..255 (the body normalises them)."""
    return images.float(), masks


def segmentation_metrics(loss_fn: LossFn) -> MetricFn:
    """Sums over a batch of the loss (per image) and of the three per-image mask metrics."""

    def metrics(logits: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        values = {
            name: value.sum()
            for name, value in seg_losses.per_image_metrics(seg_losses.predicted_masks(logits), masks).items()
        }
        values["loss"] = loss_fn(logits, masks).double() * len(masks)
        return values

    return metrics


def evaluate_segmentation(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int,
    prepare: Prepare = identity,
    ctx: DistContext = SINGLE,
) -> dict[str, float]:
    """Mean loss and the three mask metrics (per image, averaged) in eval mode (each rank
    scores its slice; the sums are added over the ranks)."""
    sums = evaluate(
        model, segmentation_metrics(loss_fn), inputs, targets, batch_size=batch_size, prepare=prepare, ctx=ctx
    )
    return {name: value.item() / len(inputs) for name, value in sums.items()}


# --- the body -----------------------------------------------------------------------------


@torch.no_grad()
def recompute_bn_statistics(body: nn.Module, images: torch.Tensor, batch_size: int) -> None:
    """Replace every BatchNorm's running mean/variance by its average over ``images``.

    torchvision's MobileNetV3 BatchNorm layers use momentum 0.01: after a short from-scratch
    run their running statistics still lag far behind the weights, and eval-mode output is
    garbage (all background). One pass over the (unaugmented) training images with batch
    statistics, averaged cumulatively, gives the statistics eval mode should use. Unlike
    torch.optim.swa_utils.update_bn, only the BatchNorm layers run in train mode: with the
    ASPP's dropout active the later BatchNorm would measure a variance eval mode never sees.
    """
    was_training = body.training
    batchnorms = [m for m in body.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in batchnorms]
    body.eval()
    for module in batchnorms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average over the batches
        module.train()
    chunks = list(batches(len(images), batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:  # BatchNorm after the ASPP's pooling needs 2 images
        chunks[-2:] = [torch.cat(chunks[-2:])]
    for index in chunks:
        body(images[index.to(images.device)].float())
    for module, momentum in zip(batchnorms, momenta):
        module.momentum = momentum
    body.train(was_training)


@dataclass
class BodyRecipe:
    """Whole-network training from scratch (AdamW, one-cycle schedule, augmentation).

    The first ``small_fraction`` of the epochs see the augmented images at ``small_size`` px
    instead of the full size (progressive resizing; skipped if that is not smaller): an
    epoch there costs about half as much at 160 vs 224 px, and the fully convolutional body
    carries what it learns to the full size. Every epoch draws ``samples_per_source`` images
    from each source, or ``source_samples[name]`` from a source of that name: the mixture's
    balance is a choice, not the sources' sizes (sources a task's target depends on most,
    DAVIS's many kinds of object and the few horses, get more; flowers, learnt quickly, fewer).
    """

    epochs: int = 65
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    loss: str = "cross_entropy+soft_iou"
    eval_every: int = 25  # validation costs a BatchNorm pass too
    small_size: int = 160
    small_fraction: float = 0.5
    # An epoch draws this many images from every source of the mixture (0: every image once) ...
    samples_per_source: int = 256
    # ... except from the sources named here (measured on three DAVIS folds; README).
    source_samples: dict[str, int] = field(default_factory=lambda: {"davis": 448, "flowers": 128, "horses": 320})
    # BatchNorm statistics are recomputed over at most this many training images per source.
    bn_images_per_source: int = 200
    augmentation: Augmentation = field(default_factory=Augmentation)

    def to_dict(self) -> dict:
        return asdict(self)


def epoch_order(train: SegmentationTensors, recipe: BodyRecipe, generator: torch.Generator) -> torch.Tensor | None:
    """The indices one body epoch visits: the recipe's count from every source of the mixture."""
    if train.sources is None:
        return None
    counts = [recipe.source_samples.get(name, recipe.samples_per_source) for name in train.source_names]
    return balanced_epoch(train.sources, counts, generator)


def bn_subset(train: SegmentationTensors, per_source: int) -> torch.Tensor:
    """A fixed, evenly spread subset of the training images (at most ``per_source`` of each
    source) over which BatchNorm statistics are measured."""
    sources = train.sources.cpu() if train.sources is not None else torch.zeros(len(train.names), dtype=torch.long)
    chosen = []
    for source in sources.unique(sorted=True).tolist():
        members = torch.nonzero(sources == source).flatten()
        step = max(1, len(members) // per_source)
        chosen.append(members[::step][:per_source])
    return torch.cat(chosen)


def evaluate_by_source(
    net: nn.Module, loss_fn: LossFn, val: dict[str, SegmentationTensors], batch_size: int, ctx: DistContext = SINGLE
) -> dict[str, float]:
    """Validation metrics of every source, keyed ``val_<source>_<metric>``."""
    row = {}
    for source, tensors in val.items():
        metrics = evaluate_segmentation(
            net, loss_fn, tensors.images, tensors.masks, batch_size=batch_size, prepare=plain_images, ctx=ctx
        )
        row.update({f"val_{source}_{name}": value for name, value in metrics.items()})
    return row


def _body_optimizer(net: SegmentationNet, train: SegmentationTensors, recipe: BodyRecipe):
    """AdamW with the one-cycle schedule over every step of the run."""
    first_order = epoch_order(train, recipe, torch.Generator().manual_seed(0))
    epoch_length = len(first_order) if first_order is not None else len(train.names)
    steps_per_epoch = -(-epoch_length // recipe.batch_size)
    return build_optimizer(
        net.parameters(),
        recipe.lr,
        weight_decay=recipe.weight_decay,
        schedule="onecycle",
        epochs=recipe.epochs,
        steps_per_epoch=steps_per_epoch,
    )


def _augmenting_prepare(recipe: BodyRecipe, augment_generator: torch.Generator, size: int) -> Callable:
    """``train_one_epoch``'s sharded ``prepare``: augmentation drawn for the global batch,
    applied to this rank's rows, at ``size`` px."""

    def prepare(
        images: torch.Tensor, masks: torch.Tensor, index: torch.Tensor, rows: slice
    ) -> tuple[torch.Tensor, torch.Tensor]:
        params = draw_augmentation(len(images), recipe.augmentation, augment_generator, images.device)
        picked = torch.arange(len(images), device=images.device)[rows]
        count = len(picked)
        if "paste" in params and count < len(images):
            # Copy-paste takes a row's object from the next row of the global batch: the
            # rank samples that one too (and drops it), so every rank pastes what one process would.
            picked = torch.cat([picked, (picked[-1:] + 1) % len(images)])
        mine = {name: value[picked] for name, value in params.items()}
        photo, target = apply_augmentation(images[picked], masks[picked], mine, size)
        return photo[:count].contiguous(memory_format=torch.channels_last), target[:count]

    return prepare


def train_body(
    net: SegmentationNet,
    train: SegmentationTensors,
    val: dict[str, SegmentationTensors] | None,
    recipe: BodyRecipe,
    generator: torch.Generator,
    augment_generator: torch.Generator,
    ctx: DistContext = SINGLE,
    checkpointing: Checkpointing = Checkpointing(),
    identity: dict | None = None,
) -> list[dict[str, float]]:
    """Train body and head together from scratch on a (mixture) training set, through
    :func:`colorseg.training.fit` (stage ``seg_body``, kept after its last epoch: the body's
    weights are written only with the heads'); leaves BatchNorm statistics recomputed. Returns
    the per-epoch history (train loss; every source's validation metrics every ``eval_every``
    epochs and after the last).

    Data-parallel under torchrun: every rank draws the same balanced epoch and the same
    augmentation parameters for each global batch and resamples only its slice of it.
    BatchNorm: SyncBatchNorm on CUDA; on CPU (gloo has no SyncBatchNorm) each rank
    normalises over its slice, and rank 0's running statistics are copied to every rank
    before they are recomputed, scored or saved.
    """
    loss_fn = seg_losses.LOSSES[recipe.loss]
    optimizer, scheduler = _body_optimizer(net, train, recipe)
    bn_images = train.images[bn_subset(train, recipe.bn_images_per_source).to(train.images.device)]
    full_size = train.images.shape[-1]
    small_epochs = round(recipe.small_fraction * recipe.epochs)
    # channels_last runs this network's convolutions about 20 % faster on CPU.
    net.to(memory_format=torch.channels_last)

    def train_epoch(runner: nn.Module, epoch: int) -> dict[str, float]:
        size = min(recipe.small_size, full_size) if epoch <= small_epochs else full_size
        return {
            "size": size,
            "train_loss": train_one_epoch(
                runner,
                optimizer,
                loss_fn,
                train.images,
                train.masks,
                batch_size=recipe.batch_size,
                generator=generator,
                prepare=_augmenting_prepare(recipe, augment_generator, size),
                scheduler=scheduler,
                order=epoch_order(train, recipe, generator),
                ctx=ctx,
                sharded_prepare=True,
                min_batch=2,
            ),
        }

    def after_epoch(runner: nn.Module, epoch: int) -> dict[str, float]:
        # BatchNorm statistics recomputed when scoring and after the last epoch (every rank, the
        # same images, the plain module: identical statistics everywhere); then the scores.
        last, scored = epoch == recipe.epochs, bool(val) and epoch % recipe.eval_every == 0
        if last or scored:
            recompute_bn_statistics(net.body, bn_images, recipe.batch_size)
            ctx.sync_buffers(net)
        return evaluate_by_source(net, loss_fn, val, recipe.batch_size, ctx) if val and (last or scored) else {}

    # A resumed run after the last epoch restored the recomputed statistics with the rest.
    stage = Stage(
        BODY_STAGE,
        net,
        optimizer,
        recipe.epochs,
        train_epoch,
        after_epoch,
        scheduler=scheduler,
        generators={"order": generator, "augment": augment_generator},
        key={"body": recipe.to_dict(), **(identity or {})},
        keep_last=True,
        sync_batchnorm=True,
    )
    return fit(stage, ctx=ctx, checkpointing=checkpointing)
