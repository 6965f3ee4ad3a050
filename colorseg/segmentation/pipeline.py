"""The segmentation part of ``train_all.py``: body (ImageNet-pretrained and fine-tuned, from
scratch, COCO, or reused), every task's two heads, weights, curves and a JSON-able report.

Order of work: load every source as tensors -> get the body (``imagenet``: an ImageNet
EfficientNet-Lite whose later stages and DeepLabV3+ decoder are fine-tuned on a balanced mixture
of all sources, colorseg.segmentation.finetune; ``scratch``: DeepLabV3 trained whole from scratch
on that mixture, then its BatchNorm statistics recomputed; ``coco``: torchvision's COCO one; or a
trained one reused) -> round it to the stored float16 precision
-> cache its features -> for each task, train the cross-entropy and the soft-IoU heads on
the cached features of that task's sources -> choose the inference size on training photos
-> score every head on every source's validation photos at their own resolution -> only
then write body and heads, so an interrupted run leaves the previous weights untouched.

Resumable (``--resume``): the body and every head save a checkpoint after each epoch in
runs/checkpoints/ (stages ``seg_body`` and ``seg_head_<task>_<loss>``), kept after their last
epoch until the weight set is written, then removed. Under torchrun body and heads train
data-parallel; only rank 0 scores and writes (weights, curves, replays, report).

Tasks: ``objects`` (the main object of any photo) trains on every source; ``flowers`` and
``horses`` on the source of that name (``--seg-tasks`` sets others).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from colorseg import weights
from colorseg.registry import SEG_BODY
from colorseg.segmentation import finetune, outputs
from colorseg.segmentation import heads as seg_heads
from colorseg.segmentation import train as seg_train
from colorseg.segmentation.efficientnet_lite import load_imagenet_weights
from colorseg.segmentation.inference import SEG_BODY_STEM
from colorseg.segmentation.losses import SEG_LOSSES
from colorseg.segmentation.models import (
    DEFAULT_BACKBONE,
    DEFAULT_SOURCE,
    DeepLabV3Body,
    DeepLabV3Head,
    LiteDeepLabBody,
    SegmentationNet,
    pretrained_body,
)
from colorseg.segmentation.sources import SegmentationData, load_data, resolve_sources, resolve_tasks
from colorseg.segmentation.training_replay import BodyReplay, example_photos
from colorseg.training import finish_stage
from colorseg.training.config import RunConfig, StageTimer

REGENERATE = "python train_all.py --only segmentation"
# Square training images, per body source (px).
IMAGE_SIZES = {"imagenet": 320, "coco": 224, "scratch": 224}


@dataclass(frozen=True)
class SegmentationConfig:
    """Everything the segmentation part of a run is asked to do (train_all.py fills it from its flags)."""

    data: tuple[str, ...] = ()  # NAME=FOLDER sources (or bare folders); empty: DEFAULT_SOURCES present in data_root()
    tasks: tuple[str, ...] = ()  # TASK=SOURCE,... specs; empty: objects=<every source> plus flowers / horses
    download: bool = False  # download official Oxford 17 Flowers into a source folder if missing
    source: str = DEFAULT_SOURCE  # body: "imagenet" (fine-tuned here), "coco" (torchvision) or "scratch"
    body_from: Path | None = None  # reuse the frozen body of this weights folder; train heads only
    backbone: str = DEFAULT_BACKBONE  # coco and scratch bodies
    image_size: int = 0  # 0: IMAGE_SIZES[source]
    body: seg_train.BodyRecipe = field(default_factory=seg_train.BodyRecipe)  # scratch
    fine_tune: finetune.FineTuneRecipe = field(default_factory=finetune.FineTuneRecipe)  # imagenet
    head_recipe: str = "default"
    seed: int = 0


def _round_to_float16(module: torch.nn.Module) -> bool:
    """Round floating-point tensors to float16 precision in place, so that what is scored
    and what heads train on is exactly what gets stored; False (nothing changed) if some
    value would overflow float16."""
    state = module.state_dict()
    rounded = {k: v.half().to(v.dtype) if v.is_floating_point() else v for k, v in state.items()}
    if not all(torch.isfinite(v).all() for v in rounded.values() if v.is_floating_point()):
        return False
    module.load_state_dict(rounded)
    return True


def get_body(
    config: SegmentationConfig, data: SegmentationData, run_config: RunConfig, hooks: list = ()
) -> tuple[torch.nn.Module, list[dict], dict[str, Any]]:
    """The frozen body, its training history (when trained here) and what its JSON records about its
    origin; ``hooks`` see every epoch of the ImageNet body's fine-tuning (its training replay)."""
    recipe, device = config.body, run_config.device
    if config.body_from is not None:
        body, description = weights.load_module(config.body_from, SEG_BODY_STEM, device, expect=SEG_BODY)
        kept = (
            "source",
            "architecture",
            "constructor",
            "backbone",
            "pretrained",
            "recipe",
            "history",
            "data",
            "command",
            "seed",
            "cpu_seconds",
            "wall_seconds",
            "metrics",
        )
        return body, [], {key: description[key] for key in kept if key in description}
    # A checkpoint resumes only a run of the same recipe, seed, size and data.
    identity = {"seed": config.seed, "image_size": image_size(config), "data": data.description}
    # What a trained body's loop needs besides its recipe: the order and augmentation draws, where it runs.
    loop_args = {
        "generator": torch.Generator().manual_seed(config.seed),
        "augment_generator": torch.Generator(device=device).manual_seed(config.seed + 1),
        "ctx": run_config.ctx,
        "checkpointing": run_config.checkpointing,
        "identity": identity,
    }
    if config.source == "imagenet":
        recipe = config.fine_tune
        body = LiteDeepLabBody(recipe.variant).to(device)
        pretrained = load_imagenet_weights(body.encoder, recipe.variant)
        history = finetune.fine_tune_body(body, data.train, data.val, config.fine_tune, **loop_args, hooks=hooks)
        return (
            body,
            history,
            {
                "source": "imagenet",
                "architecture": "LiteDeepLabBody",
                "constructor": {"variant": recipe.variant},
                "backbone": f"efficientnet_{recipe.variant}",
                "pretrained": pretrained,
                "recipe": recipe.to_dict(),
                "history": history,
                "metrics": {"val_at_training_size": history[-1]},
            },
        )
    if config.source == "coco":
        body = pretrained_body(config.backbone).to(device)
        return (
            body,
            [],
            {
                "source": "coco",
                "backbone": config.backbone,
                "recipe": "torchvision COCO_WITH_VOC_LABELS_V1",
                "history": [],
            },
        )
    net = SegmentationNet(DeepLabV3Body(config.backbone), DeepLabV3Head()).to(device)
    identity["backbone"] = config.backbone
    history = seg_train.train_body(net, data.train, data.val, recipe, **loop_args)
    origin = {
        "source": "scratch",
        "backbone": config.backbone,
        "recipe": recipe.to_dict(),
        "history": history,
        # Scores of the temporary head trained along with the body, at the training size.
        "metrics": {"val_at_training_size": history[-1]},
    }
    return net.body, history, origin


def image_size(config: SegmentationConfig) -> int:
    """The square training size: the configured one, else the body source's."""
    if config.image_size:
        return config.image_size
    if config.body_from is not None:
        return weights.read_description(config.body_from, SEG_BODY_STEM).get("image_size", 224)
    return IMAGE_SIZES[config.source]


def run(config: SegmentationConfig, run_config: RunConfig) -> dict[str, Any]:
    """Get the body, train every task's heads, score, save; returns the training report's
    section, ``{"segmentation": {...}}`` (``{}`` on ranks other than 0, which only train)."""
    torch.manual_seed(config.seed)
    device, ctx = torch.device(run_config.device), run_config.ctx
    timer = StageTimer()
    sources = resolve_sources(list(config.data))
    tasks = resolve_tasks(list(config.tasks), sources)
    size = image_size(config)
    with timer("data"):
        data = load_data(sources, size, device, config.download)
    photos = example_photos(size, device) if ctx.is_main else None
    trains_imagenet_body = config.source == "imagenet" and config.body_from is None
    body_replay = BodyReplay(photos) if photos is not None and trains_imagenet_body else None
    with timer("body"):
        body, body_history, origin = get_body(config, data, run_config, [body_replay] if body_replay else [])
        body_dtype = torch.float16 if _round_to_float16(body) else None
    recipe = seg_heads.HEAD_RECIPES[config.head_recipe]
    heads, head_histories, replays = seg_heads.train_heads(
        body, data, tasks, recipe, config.seed, config.body.batch_size, timer, run_config
    )
    if not ctx.is_main:  # rank 0 scores and writes; the others wait for it
        ctx.barrier()
        return {}
    result = outputs.TrainedSegmentation(
        tasks,
        body,
        body_dtype,
        body_history,
        origin,
        heads,
        head_histories,
        {"name": config.head_recipe, **recipe.to_dict()},
        size,
    )
    outputs.score(result, data, size, device, timer)
    plots = outputs.plot_curves(Path(run_config.report_dir), body_history, head_histories)
    common = {
        "data": data.description,
        "image_size": size,
        "command": run_config.command,
        "regenerate": REGENERATE,
        "seed": config.seed,
        **run_config.hardware(),
    }
    outputs.save_segmentation(
        run_config.weights_dir,
        body,
        body_dtype,
        outputs.body_metadata(common, result, timer),
        heads,
        outputs.head_metadata(common, result, timer),
    )
    # Body and heads are in place: their checkpoints are spent.
    for stage in [seg_train.BODY_STAGE, *(seg_heads.head_stage(t, loss) for t in tasks for loss in SEG_LOSSES)]:
        finish_stage(run_config.checkpointing, stage)
    replay_report = replays.save(
        run_config.report_dir, lambda task: sum(timer.wall[f"head_{task}_{loss}"] for loss in SEG_LOSSES)
    )
    section = outputs.report_section(config.seed, result, data, timer, plots, run_config)
    if body_replay is not None:
        replay_report["body"] = body_replay.save(run_config.report_dir)
    section["replays"] = replay_report
    ctx.barrier()
    return {"segmentation": section}
