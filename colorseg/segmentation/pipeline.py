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

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from colorseg import weights
from colorseg.registry import SEG_BODY
from colorseg.training.config import RunConfig
from colorseg.segmentation import data as seg_data
from colorseg.segmentation import finetune
from colorseg.segmentation import heads as seg_heads
from colorseg.segmentation import outputs
from colorseg.segmentation import train as seg_train
from colorseg.segmentation.inference import FLIP_AVERAGE, Segmenter, evaluate_samples
from colorseg.segmentation.losses import SEG_LOSSES
from colorseg.segmentation.outputs import SEG_BODY_STEM, seg_head_stem
from colorseg.segmentation.efficientnet_lite import load_imagenet_weights
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

REGENERATE = "python train_all.py --only segmentation"
# Inference sizes tried, as multiples of the training size. Training sees random windows of
# 0.6-1.2 times the image (0.9 on average) at the training size, so objects look larger than
# in a whole photo at that size; a somewhat larger inference size undoes that ("FixRes",
# Touvron et al. 2019). The largest, 10/7, keeps a 224 px body's map at 20 cells, below the
# 24 at which the never-trained rate-24 ASPP taps would start to read real features.
WORKING_SIZE_FACTORS = (1.0, 8 / 7, 9 / 7, 10 / 7)
# The ImageNet body sees whole photos at its training size in half its views (crops in the
# rest) and has a skip at stride 8: little to undo, and larger sizes cost latency (the app's
# budget is 300 ms at 512 px on one thread, both heads, two views).
IMAGENET_WORKING_SIZE_FACTORS = (1.0, 1.1, 1.2)
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


class StageTimer:
    """CPU and wall seconds of each named stage: ``with timer("body"): ...``."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        yield
        self.cpu[name] = round(time.process_time() - cpu_start, 1)
        self.wall[name] = round(time.perf_counter() - wall_start, 1)

    def of(self, *names: str) -> dict[str, dict[str, float]]:
        return {"cpu_seconds": {k: self.cpu[k] for k in names}, "wall_seconds": {k: self.wall[k] for k in names}}


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


def _choose_working_size(
    segmenter: Segmenter, size: int, samples: dict[str, list[seg_data.Sample]], tasks: dict[str, list[str]],
    factors: tuple[float, ...] = WORKING_SIZE_FACTORS,
) -> tuple[int, dict[int, float]]:
    """The inference size with the best mean IoU of every head on its task's *training*
    photos, so that the validation splits stay untouched; returns it and every candidate's score."""
    candidates = sorted({max(16, round(size * factor / 16) * 16) for factor in factors})
    scores = {}
    for candidate in candidates:
        # One body pass per photo serves every task that scores it (a source is in several tasks).
        by_source = {
            name: evaluate_samples(segmenter, samples[name], tuple(t for t, n in tasks.items() if name in n), candidate)
            for name in dict.fromkeys(n for names in tasks.values() for n in names)
        }
        ious = [by_source[name][task][loss]["iou"] for task, names in tasks.items() for name in names for loss in SEG_LOSSES]
        scores[candidate] = sum(ious) / len(ious)
    return max(candidates, key=scores.get), scores


def get_body(
    config: SegmentationConfig, data: SegmentationData, run_config: RunConfig, hooks: list = ()
) -> tuple[torch.nn.Module, list[dict], dict[str, Any]]:
    """The frozen body, its training history (when trained here) and what its JSON records about its
    origin; ``hooks`` see every epoch of the ImageNet body's fine-tuning (its training replay)."""
    recipe, device = config.body, run_config.device
    if config.body_from is not None:
        body, description = weights.load_module(config.body_from, SEG_BODY_STEM, device, expect=SEG_BODY)
        kept = ("source", "architecture", "constructor", "backbone", "pretrained", "recipe", "history", "data",
                "command", "seed", "cpu_seconds", "wall_seconds", "metrics")
        return body, [], {key: description[key] for key in kept if key in description}
    # A checkpoint resumes only a run of the same recipe, seed, size and data.
    identity = {"seed": config.seed, "image_size": image_size(config), "data": data.description}
    if config.source == "imagenet":
        recipe = config.fine_tune
        body = LiteDeepLabBody(recipe.variant).to(device)
        pretrained = load_imagenet_weights(body.encoder, recipe.variant)
        history = finetune.fine_tune_body(
            body, data.train, data.val, recipe, generator=torch.Generator().manual_seed(config.seed),
            augment_generator=torch.Generator(device=device).manual_seed(config.seed + 1),
            ctx=run_config.ctx, checkpointing=run_config.checkpointing, identity=identity, hooks=hooks,
        )
        return body, history, {
            "source": "imagenet", "architecture": "LiteDeepLabBody", "constructor": {"variant": recipe.variant},
            "backbone": f"efficientnet_{recipe.variant}", "pretrained": pretrained, "recipe": recipe.to_dict(),
            "history": history, "metrics": {"val_at_training_size": history[-1]},
        }
    if config.source == "coco":
        body = pretrained_body(config.backbone).to(device)
        return body, [], {"source": "coco", "backbone": config.backbone, "recipe": "torchvision COCO_WITH_VOC_LABELS_V1", "history": []}
    net = SegmentationNet(DeepLabV3Body(config.backbone), DeepLabV3Head()).to(device)
    identity["backbone"] = config.backbone
    history = seg_train.train_body(
        net, data.train, data.val, recipe,
        generator=torch.Generator().manual_seed(config.seed),
        augment_generator=torch.Generator(device=device).manual_seed(config.seed + 1),
        ctx=run_config.ctx, checkpointing=run_config.checkpointing, identity=identity,
    )
    origin = {
        "source": "scratch", "backbone": config.backbone, "recipe": recipe.to_dict(), "history": history,
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
    result = TrainedSegmentation(tasks, body, body_dtype, body_history, origin, heads, head_histories,
                                 {"name": config.head_recipe, **recipe.to_dict()}, size)
    score(result, data, size, device, timer)
    plots = outputs.plot_curves(Path(run_config.report_dir), body_history, head_histories)
    common = {
        "data": data.description, "image_size": size, "command": run_config.command,
        "regenerate": REGENERATE, "seed": config.seed, **run_config.hardware(),
    }
    outputs.save_segmentation(
        run_config.weights_dir, body, body_dtype, _body_metadata(common, result, timer), heads,
        _head_metadata(common, result, timer),
    )
    # Body and heads are in place: their checkpoints are spent.
    for stage in [seg_train.BODY_STAGE, *(seg_heads.head_stage(t, loss) for t in tasks for loss in SEG_LOSSES)]:
        finish_stage(run_config.checkpointing, stage)
    replay_report = replays.save(
        run_config.report_dir, lambda task: sum(timer.wall[f"head_{task}_{loss}"] for loss in SEG_LOSSES)
    )
    section = _report_section(config, result, data, timer, plots, run_config)
    if body_replay is not None:
        replay_report["body"] = body_replay.save(run_config.report_dir)
    section["replays"] = replay_report
    ctx.barrier()
    return {"segmentation": section}


@dataclass
class TrainedSegmentation:
    """What a run has made, for scoring and saving."""

    tasks: dict[str, list[str]]  # task -> its sources
    body: torch.nn.Module
    body_dtype: torch.dtype | None  # float16 when it is stored so (values already rounded)
    body_history: list[dict]
    origin: dict[str, Any]  # what the body's JSON records about where it came from
    heads: dict[str, dict[str, torch.nn.Module]]  # task -> loss -> head
    head_histories: dict[str, list[dict]]  # "task/loss" -> per-epoch rows
    head_recipe: dict[str, Any]
    image_size: int
    working_size: int = 0
    working_size_scores: dict[int, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # {task: {loss: {source: metrics}}}


def score(result: TrainedSegmentation, data: SegmentationData, size: int, device: torch.device, timer: StageTimer) -> None:
    """Pick the inference size on training photos, then score every head on every source's
    validation photos at their own resolution (as ``colorseg.cli.evaluate`` does)."""
    segmenter = Segmenter(result.body, result.heads, size, {}, device, FLIP_AVERAGE)
    factors = IMAGENET_WORKING_SIZE_FACTORS if result.origin["source"] == "imagenet" else WORKING_SIZE_FACTORS
    with timer("working_size"):
        result.working_size, result.working_size_scores = _choose_working_size(
            segmenter, size, data.size_samples, result.tasks, factors
        )
    with timer("evaluate"):
        by_source = {
            name: evaluate_samples(segmenter, samples, None, result.working_size) for name, samples in data.val_samples.items()
        }
        result.metrics = {
            task: {loss: {name: by_source[name][task][loss] for name in by_source} for loss in SEG_LOSSES} for task in result.tasks
        }


def _body_metadata(common: dict, result: TrainedSegmentation, timer: StageTimer) -> dict[str, Any]:
    origin = result.origin
    own_times = timer.of("data", "body", "working_size")
    return {
        **common, **origin,
        "tasks": list(result.tasks),
        "task_sources": result.tasks,
        "working_size": result.working_size,
        "flip_average": FLIP_AVERAGE,  # how its metrics were scored, and so how inference runs it
        # Mean IoU of every head on its task's training photos at each candidate inference size.
        "working_size_scores_train": {str(k): v for k, v in result.working_size_scores.items()},
        # process_time counts every thread: with 2 threads it is about twice the wall time.
        "cpu_seconds": origin.get("cpu_seconds") or own_times["cpu_seconds"],
        "wall_seconds": origin.get("wall_seconds") or own_times["wall_seconds"],
    }


def _head_metadata(common: dict, result: TrainedSegmentation, timer: StageTimer) -> dict[tuple[str, str], dict]:
    return {
        (task, loss): {
            **common,
            "task": task, "task_sources": result.tasks[task], "loss": loss,
            "body_source": result.origin["source"],
            "recipe": result.head_recipe,
            # Per source, at each validation photo's own (mask) resolution, as colorseg.cli.evaluate
            # scores, with the body run at working_size (flip-averaged: the body's JSON says).
            "metrics": {"val": result.metrics[task][loss]},
            "history": result.head_histories[f"{task}/{loss}"],
            **timer.of("features", f"head_{task}_{loss}"),
        }
        for task in result.tasks for loss in SEG_LOSSES
    }


def _report_section(
    config: SegmentationConfig, result: TrainedSegmentation, data: SegmentationData, timer: StageTimer,
    plots: list[str], run_config: RunConfig,
) -> dict[str, Any]:
    tasks, origin = result.tasks, result.origin
    return {
        "settings": {
            "source": origin["source"], "backbone": origin.get("backbone"), "image_size": result.image_size,
            "working_size": result.working_size, "flip_average": FLIP_AVERAGE, "tasks": tasks,
            "body_recipe": origin.get("recipe"),
            "head_recipe": result.head_recipe,
            "seed": config.seed, "threads": torch.get_num_threads(), **run_config.hardware(),
            "body_stored_dtype": "float16" if result.body_dtype else "float32",
        },
        "data": data.description,
        "metrics": {
            "val": result.metrics,
            "body_val_at_training_size": result.body_history[-1] if result.body_history else None,
            "train_by_working_size": {str(k): v for k, v in result.working_size_scores.items()},
        },
        "cpu_seconds": {**timer.cpu, "total": round(sum(timer.cpu.values()), 1)},
        "wall_seconds": {**timer.wall, "total": round(sum(timer.wall.values()), 1)},
        "weights": [SEG_BODY_STEM, *(seg_head_stem(t, loss) for t in tasks for loss in SEG_LOSSES)],
        "plots": plots,
    }
