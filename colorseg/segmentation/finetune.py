"""Fine-tuning the ImageNet body (source ``imagenet``) on the segmentation sources.

The EfficientNet-Lite encoder arrives trained on ImageNet. Its first stages (edges, textures,
parts) stay as they are; its later stages, the ASPP, the decoder and a temporary 1x1 head learn
"which pixels are the object" from DAVIS, flowers and horses. Because the first stages never
change, their output for every training view is computed once and kept (float16) in memory:
each training step then runs only the part that learns, a fraction of the whole network's work,
which is what makes the whole segmentation part fit an hour on a 2-core CPU. The views are each
photo, its mirror image and ``views - 2`` random crops (scale, aspect, rotation, colour).

BatchNorm layers of the encoder keep their ImageNet statistics (eval mode; their affine parameters
train): with batches of 16 mixed photos, batch statistics would be noisier than ImageNet's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation.augment import Augmentation, augment
from colorseg.segmentation.data import SegmentationTensors
from colorseg.segmentation.models import DeepLabV3Head, LiteDeepLabBody, head_logits
from colorseg.segmentation.sources import balanced_epoch
from colorseg.segmentation.train import BODY_STAGE, segmentation_metrics
from colorseg.training import (
    SINGLE,
    Checkpointing,
    EpochHook,
    Stage,
    batches,
    build_optimizer,
    evaluate,
    fit,
    train_one_epoch,
)
from colorseg.training.distributed import DistContext


@dataclass
class FineTuneRecipe:
    """How the ImageNet body is fine-tuned (chosen on folds of the training data; docs/results.md)."""

    variant: str = "lite0"
    first_trained_stage: int = 5  # encoder stages before it stay as ImageNet trained them
    epochs: int = 12
    batch_size: int = 16
    lr: float = 2e-3  # peak, for the decoder and head
    encoder_lr_scale: float = 0.2  # the fine-tuned encoder stages peak lower: they start trained, and with
    # their BatchNorm statistics fixed, full-size steps made the loss climb back up mid-run (proxy runs)
    weight_decay: float = 1e-4
    loss: str = "cross_entropy+soft_iou"
    views: int = 4  # cached per training photo: the photo, its mirror, views - 2 random crops
    eval_every: int = 4
    samples_per_source: int = 256
    source_samples: dict[str, int] = field(default_factory=lambda: {"davis": 448, "flowers": 128, "horses": 320})
    augmentation: Augmentation = field(default_factory=lambda: Augmentation(flip=True))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CachedViews:
    """The frozen prefix's outputs for every view: ``view * N + photo`` indexes them."""

    x: torch.Tensor  # float16 [V*N, C, h, w]: the first trained stage's input
    skip: torch.Tensor | None  # float16 [V*N, 40, S/8, S/8]: the decoder's skip, when the prefix computed it
    masks: torch.Tensor  # uint8 [V*N, S, S]
    count: int  # N photos

    def gather(self, ids: torch.Tensor, masks: torch.Tensor, index: torch.Tensor | None = None):
        """``train_one_epoch``'s ``prepare``: the cached inputs of views ``ids`` (their masks come along)."""
        skip = None if self.skip is None else self.skip[ids].float()
        return (self.x[ids].float(), skip), masks


@torch.no_grad()
def cache_views(
    body: LiteDeepLabBody,
    images: torch.Tensor,
    masks: torch.Tensor,
    stop: int,
    views: int,
    augmentation: Augmentation,
    generator: torch.Generator,
    batch_size: int = 32,
    progress: bool = False,
) -> CachedViews:
    """Run the frozen prefix (stem and stages [0, stop)) once over every view of ``images``."""
    body.eval()
    xs, skips, targets = [], [], []
    for view in tqdm(range(views), desc="seg_body: caching the frozen stages", unit="view", disable=not progress):
        for index in batches(len(images), batch_size):
            index = index.to(images.device)
            photo, target = images[index].float(), masks[index]
            if view == 1:
                photo, target = photo.flip(-1), target.flip(-1)
            elif view >= 2:
                photo, target = augment(images[index], masks[index], augmentation, generator)
                target = target.to(torch.uint8)
            x, skip = body.prefix(photo, stop)
            xs.append(x.half())
            skips.append(None if skip is None else skip.half())
            targets.append(target)
    skip = None if skips[0] is None else torch.cat(skips)
    return CachedViews(torch.cat(xs), skip, torch.cat(targets), len(images))


class TrainedPart(nn.Module):
    """The part of body + temporary head that learns, on cached inputs: (x, skip) -> logits at mask size."""

    def __init__(self, body: LiteDeepLabBody, head: nn.Module, start: int, size: tuple[int, int]):
        super().__init__()
        self.body, self.head, self.start, self.size = body, head, start, size

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        return head_logits(self.head, self.body.suffix(*inputs, self.start), self.size)

    def train(self, mode: bool = True) -> "TrainedPart":
        super().train(mode)
        for module in self.body.encoder.modules():  # ImageNet statistics stay (module docstring)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


def freeze_prefix(body: LiteDeepLabBody, start: int) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Freeze the stem and stages [0, start); return the parameters that train: (encoder's, decoder's)."""
    body.requires_grad_(True)
    body.encoder.stem.requires_grad_(False)
    for stage in body.encoder.stages[:start]:
        stage.requires_grad_(False)
    encoder = [p for p in body.encoder.parameters() if p.requires_grad]
    chosen = {id(p) for p in encoder}
    return encoder, [p for p in body.parameters() if p.requires_grad and id(p) not in chosen]


def _epoch_order(train: SegmentationTensors, recipe: FineTuneRecipe, generator: torch.Generator) -> torch.Tensor:
    """A balanced epoch of photos (the recipe's count from every source), each as one random view."""
    counts = [recipe.source_samples.get(name, recipe.samples_per_source) for name in train.source_names]
    photos = balanced_epoch(train.sources, counts, generator)
    views = torch.randint(recipe.views, (len(photos),), generator=generator)
    return views * len(train.names) + photos


def fine_tune_body(
    body: LiteDeepLabBody,
    train: SegmentationTensors,
    val: dict[str, SegmentationTensors] | None,
    recipe: FineTuneRecipe,
    generator: torch.Generator,
    augment_generator: torch.Generator,
    ctx: DistContext = SINGLE,
    checkpointing: Checkpointing = Checkpointing(),
    identity: dict | None = None,
    hooks: Sequence[EpochHook] = (),
) -> list[dict[str, float]]:
    """Fine-tune ``body`` (ImageNet encoder loaded) on the mixture ``train``; returns the per-epoch
    history (train loss; every source's validation metrics every ``eval_every`` epochs).
    ``generator`` (CPU) draws the epochs' order and views, ``augment_generator`` (on the data's
    device) the crops.

    Resumable as stage ``seg_body`` (the cache is recomputed, deterministically, from the same
    generator draws); data-parallel under torchrun like every stage (each rank caches every view
    and trains on its slice of each global batch)."""
    start, size = recipe.first_trained_stage, tuple(train.masks.shape[-2:])
    cache = cache_views(
        body,
        train.images,
        train.masks,
        start,
        recipe.views,
        recipe.augmentation,
        augment_generator,
        progress=ctx.is_main,
    )
    val_caches = {
        name: cache_views(body, v.images, v.masks, start, 1, recipe.augmentation, augment_generator)
        for name, v in (val or {}).items()
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator.initial_seed())
        head = DeepLabV3Head().to(train.images.device)
    model = TrainedPart(body, head, start, size)
    loss_fn = seg_losses.LOSSES[recipe.loss]
    steps = -(-len(_epoch_order(train, recipe, torch.Generator().manual_seed(0))) // recipe.batch_size)
    encoder, decoder = freeze_prefix(body, start)
    groups = [{"params": encoder, "lr_scale": recipe.encoder_lr_scale}, {"params": [*decoder, *head.parameters()]}]
    optimizer, scheduler = build_optimizer(
        groups,
        recipe.lr,
        weight_decay=recipe.weight_decay,
        schedule="onecycle",
        epochs=recipe.epochs,
        steps_per_epoch=steps,
    )
    ids = torch.arange(len(cache.masks), device=cache.masks.device)

    def train_epoch(runner: nn.Module, epoch: int) -> dict[str, float]:
        return {
            "train_loss": train_one_epoch(
                runner,
                optimizer,
                loss_fn,
                ids,
                cache.masks,
                batch_size=recipe.batch_size,
                scheduler=scheduler,
                order=_epoch_order(train, recipe, generator),
                prepare=cache.gather,
                ctx=ctx,
                min_batch=2,
            )
        }

    def after_epoch(runner: nn.Module, epoch: int) -> dict[str, float]:
        if epoch % recipe.eval_every and epoch != recipe.epochs:
            return {}
        row = {}
        for name, part in val_caches.items():
            sums = evaluate(
                model,
                segmentation_metrics(loss_fn),
                torch.arange(len(part.masks)),
                part.masks,
                batch_size=recipe.batch_size,
                prepare=part.gather,
                ctx=ctx,
            )
            row.update({f"val_{name}_{metric}": value.item() / part.count for metric, value in sums.items()})
        return row

    # The cache is rebuilt on resume from the same augment_generator draws: only the order is saved.
    stage = Stage(
        BODY_STAGE,
        model,
        optimizer,
        recipe.epochs,
        train_epoch,
        after_epoch,
        scheduler=scheduler,
        generators={"order": generator},
        key={"body": recipe.to_dict(), **(identity or {})},
        keep_last=True,
    )
    history = fit(stage, ctx=ctx, checkpointing=checkpointing, hooks=hooks)
    body.requires_grad_(False)
    return history
