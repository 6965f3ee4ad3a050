"""Part D's heads: fresh 1x1 heads, one per task and loss, trained on the frozen body's cached
features. ``train_head`` is one head's loop, ``train_heads`` the stage that trains every task's
(the body's own training is in :mod:`colorseg.segmentation.train`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation.losses import SEG_LOSSES
from colorseg.segmentation.models import DeepLabV3Head, head_logits
from colorseg.segmentation.sources import SegmentationData
from colorseg.segmentation.train import evaluate_segmentation
from colorseg.segmentation.training_replay import TaskReplays, example_photos
from colorseg.training import (
    SINGLE,
    Checkpointing,
    EpochHook,
    Stage,
    batches,
    build_optimizer,
    fit,
    train_one_epoch,
)
from colorseg.training.config import RunConfig
from colorseg.training.distributed import DistContext
from colorseg.training.provenance import tensors_digest


def head_stage(task: str, loss: str) -> str:
    """Checkpoint stage of one head (runs/checkpoints/<stage>/)."""
    return f"seg_head_{task}_{loss}"


@torch.no_grad()
def compute_features(body: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The frozen body's output for uint8 images [N, 3, S, S]: float [N, 256, S/s, S/s]."""
    body.eval()
    return torch.cat([body(images[index.to(images.device)].float()) for index in batches(len(images), batch_size)])


class CachedHead(nn.Module):
    """A head applied to cached body features, upsampled to the mask size exactly as the
    end-to-end network does, so that losses and gradients equal the end-to-end ones."""

    def __init__(self, head: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.head = head
        self.size = size

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return head_logits(self.head, features, self.size)


@dataclass
class HeadRecipe:
    epochs: int
    lr: float
    batch_size: int

    def to_dict(self) -> dict:
        return asdict(self)


HEAD_RECIPES = {
    # Part D as the assignment runs it: Adam, lr 0.05, batch 128, 10 epochs.
    "assignment": HeadRecipe(epochs=10, lr=0.05, batch_size=128),
    # More, smaller steps: 0.005-0.01 more validation IoU than the assignment's 20 steps
    # on a 224 px scratch body (README), for seconds more on cached features.
    "default": HeadRecipe(epochs=20, lr=0.01, batch_size=16),
}


def train_head(
    loss_name: str,
    train_features: torch.Tensor,
    train_masks: torch.Tensor,
    val_features: torch.Tensor | None,
    val_masks: torch.Tensor | None,
    recipe: HeadRecipe,
    generator: torch.Generator,
    ctx: DistContext = SINGLE,
    checkpointing: Checkpointing = Checkpointing(),
    stage: str | None = None,
    identity: dict | None = None,
    hooks: Sequence[EpochHook] = (),
) -> tuple[nn.Conv2d, list[dict[str, float]]]:
    """Train a fresh ``Conv2d(256, 2, 1)`` with ``loss_name`` on cached features, through
    :func:`colorseg.training.fit`: data-parallel under torchrun (each rank its slice of every
    global batch; no BatchNorm, so the step is the single-process one), resumable as ``stage``
    (a checkpoint is a few kB, kept after the last epoch until the weight set is written; no
    ``stage``: no checkpoints). ``hooks`` (e.g. a training replay) get the :class:`CachedHead`.
    """
    loss_fn = seg_losses.LOSSES[loss_name]
    # The head's initial weights come from the seed of ``generator`` alone, not from whatever
    # the global RNG went through before (body training, its dropout): a head trained on a
    # given body is the same whether the body was trained in this run, reused or resumed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator.initial_seed())
        head = DeepLabV3Head().to(train_features.device)
    model = CachedHead(head, tuple(train_masks.shape[-2:]))
    optimizer, _ = build_optimizer(head.parameters(), recipe.lr)  # the assignment's Adam

    def train_epoch(runner: nn.Module, epoch: int) -> dict[str, float]:
        return {
            "train_loss": train_one_epoch(
                runner,
                optimizer,
                loss_fn,
                train_features,
                train_masks,
                batch_size=recipe.batch_size,
                generator=generator,
                ctx=ctx,
            )
        }

    def after_epoch(runner: nn.Module, epoch: int) -> dict[str, float]:
        if val_features is None:
            return {}
        metrics = evaluate_segmentation(model, loss_fn, val_features, val_masks, batch_size=recipe.batch_size, ctx=ctx)
        return {f"val_{name}": value for name, value in metrics.items()}

    trained = Stage(
        stage or f"seg_head_{loss_name}",
        model,
        optimizer,
        recipe.epochs,
        train_epoch,
        after_epoch,
        generators={"batches": generator},
        key={"head": recipe.to_dict(), "loss": loss_name, **(identity or {})},
        keep_last=True,
    )
    history = fit(trained, ctx=ctx, checkpointing=checkpointing if stage else Checkpointing(), hooks=hooks)
    return head.eval(), history


def train_heads(
    body: torch.nn.Module,
    data: SegmentationData,
    tasks: dict[str, list[str]],
    recipe: HeadRecipe,
    seed: int,
    batch_size: int,
    timer,
    run_config: RunConfig | None = None,
) -> tuple[dict[str, dict[str, torch.nn.Module]], dict[str, list[dict]], TaskReplays]:
    """Part D for each task: fresh 1x1 heads, one per loss, on the frozen body's cached features.

    Also returns each task's training replay (on rank 0: its heads' masks on a few fixed
    validation images at the training size, after every epoch, predicted from the cached
    features) with the seconds spent recording it."""
    run_config = run_config or RunConfig(Path("."), Path("."), data.train.images.device)
    ctx, checkpointing = run_config.ctx, run_config.checkpointing
    with timer("features"):
        train_features = compute_features(body, data.train.images, batch_size)
        val_features = {n: compute_features(body, v.images, batch_size) for n, v in data.val.items()}
    # A head's checkpoint resumes only on the same body, data and seed.
    identity = {
        "seed": seed,
        "body_sha256": tensors_digest(*body.state_dict().values()),
        "sources": list(data.description),
    }
    photos = example_photos(data.train.images.shape[-1], data.train.images.device)
    replays = TaskReplays(body, photos, ctx.is_main)
    heads: dict[str, dict[str, torch.nn.Module]] = {}
    histories: dict[str, list[dict]] = {}
    for task, names in tasks.items():
        wanted = torch.tensor([data.train.source_names.index(n) for n in names], device=data.train.sources.device)
        index = torch.isin(data.train.sources, wanted)
        val_x = torch.cat([val_features[n] for n in names])
        val_y = torch.cat([data.val[n].masks for n in names])
        heads[task] = {}
        replays.start(task)
        for loss in SEG_LOSSES:
            with timer(f"head_{task}_{loss}"):
                heads[task][loss], histories[f"{task}/{loss}"] = train_head(
                    loss,
                    train_features[index],
                    data.train.masks[index],
                    val_x,
                    val_y,
                    recipe,
                    generator=torch.Generator().manual_seed(seed),
                    ctx=ctx,
                    checkpointing=checkpointing,
                    stage=head_stage(task, loss),
                    identity=identity,
                    hooks=replays.hooks(task, loss),
                )
    return heads, histories, replays
