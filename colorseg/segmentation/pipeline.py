"""The segmentation part of ``train_all.py``: body (from scratch, pretrained, or reused),
every task's two heads, weights, curves and a JSON-able report.

Order of work: load every source as tensors -> get the body (train it whole from scratch on
a balanced mixture of all sources, then recompute its BatchNorm statistics; or take
torchvision's COCO one; or reuse a trained one) -> round it to the stored float16 precision
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

from colorseg import weights_io
from colorseg.config import RunConfig
from colorseg.provenance import tensors_digest
from colorseg.replay import ReplayRecorder
from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation import data as seg_data
from colorseg.segmentation import outputs
from colorseg.segmentation import train as seg_train
from colorseg.segmentation.inference import HEAD_NAMES, Segmenter, evaluate_samples
from colorseg.segmentation.models import (
    DEFAULT_BACKBONE,
    DeepLabV3Body,
    DeepLabV3Head,
    SegmentationNet,
    head_logits,
    pretrained_body,
)
from colorseg.segmentation.sources import SegmentationData, load_data, resolve_sources, resolve_tasks
from colorseg.training import finish_stage

REGENERATE = "python train_all.py --only segmentation"
# Inference sizes tried, as multiples of the training size. Training sees random windows of
# 0.6-1.2 times the image (0.9 on average) at the training size, so objects look larger than
# in a whole photo at that size; a somewhat larger inference size undoes that ("FixRes",
# Touvron et al. 2019). The largest, 10/7, keeps a 224 px body's map at 20 cells, below the
# 24 at which the never-trained rate-24 ASPP taps would start to read real features.
WORKING_SIZE_FACTORS = (1.0, 8 / 7, 9 / 7, 10 / 7)
REPLAY_IMAGES_PER_SOURCE = 2  # validation images per source whose masks the replay shows


def replay_stem(task: str) -> str:
    """reports/<stem>.json + <stem>_<loss>.png: the task's heads' masks after every epoch."""
    return f"replay_seg_{task}"


@dataclass(frozen=True)
class SegmentationConfig:
    """Everything the segmentation part of a run is asked to do (train_all.py fills it from its flags)."""

    data: tuple[str, ...] = ()  # NAME=FOLDER sources (or bare folders); empty: DEFAULT_SOURCES present in data_root()
    tasks: tuple[str, ...] = ()  # TASK=SOURCE,... specs; empty: objects=<every source> plus flowers / horses
    download: bool = False  # download official Oxford 17 Flowers into a source folder if missing
    source: str = "scratch"  # body: "scratch" (trained here) or "pretrained" (torchvision COCO)
    body_from: Path | None = None  # reuse the frozen body of this weights folder; train heads only
    backbone: str = DEFAULT_BACKBONE
    image_size: int = 224
    body: seg_train.BodyRecipe = field(default_factory=seg_train.BodyRecipe)
    head_recipe: str = "default"
    seed: int = 0
    threads: int = 0  # CPU threads for torch (0: torch's default)


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
    segmenter: Segmenter, size: int, samples: dict[str, list[seg_data.Sample]], tasks: dict[str, list[str]]
) -> tuple[int, dict[int, float]]:
    """The inference size with the best mean IoU of every head on its task's *training*
    photos, so that the validation splits stay untouched; returns it and every candidate's score."""
    candidates = sorted({max(16, round(size * factor / 16) * 16) for factor in WORKING_SIZE_FACTORS})
    scores = {}
    for candidate in candidates:
        ious = []
        for task, names in tasks.items():
            for name in names:
                metrics = evaluate_samples(segmenter, samples[name], (task,), candidate)[task]
                ious += [metrics[loss]["iou"] for loss in HEAD_NAMES]
        scores[candidate] = sum(ious) / len(ious)
    return max(candidates, key=scores.get), scores


def get_body(
    config: SegmentationConfig, data: SegmentationData, run_config: RunConfig
) -> tuple[torch.nn.Module, list[dict], dict[str, Any]]:
    """The frozen body, its training history (scratch only) and what its JSON records about its origin."""
    recipe, device = config.body, run_config.device
    if config.body_from is not None:
        body, description = weights_io.load_module(config.body_from, weights_io.SEG_BODY_STEM, device)
        kept = ("source", "backbone", "recipe", "history", "data", "command", "seed", "cpu_seconds", "wall_seconds", "metrics")
        return body, [], {key: description[key] for key in kept if key in description}
    if config.source == "pretrained":
        body = pretrained_body(config.backbone).to(device)
        return body, [], {"source": "pretrained", "backbone": config.backbone, "recipe": "torchvision COCO_WITH_VOC_LABELS_V1", "history": []}
    net = SegmentationNet(DeepLabV3Body(config.backbone), DeepLabV3Head()).to(device)
    # A checkpoint resumes only a run of the same recipe, seed, size and data.
    identity = {"seed": config.seed, "image_size": config.image_size, "backbone": config.backbone, "data": data.description}
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


def replay_images(val: dict[str, seg_data.SegmentationTensors]) -> dict[str, torch.Tensor]:
    """Fixed validation images for the replays: ``REPLAY_IMAGES_PER_SOURCE`` of every source,
    evenly spread (source -> index tensor)."""
    chosen = {}
    for name, tensors in val.items():
        count = len(tensors.names)
        picks = sorted({i * count // REPLAY_IMAGES_PER_SOURCE for i in range(REPLAY_IMAGES_PER_SOURCE)} & set(range(count)))
        if picks:
            chosen[name] = torch.tensor(picks)
    return chosen


def train_heads(
    body: torch.nn.Module, data: SegmentationData, tasks: dict[str, list[str]], recipe: seg_train.HeadRecipe,
    seed: int, batch_size: int, timer, run_config: RunConfig | None = None,
) -> tuple[dict[str, dict[str, torch.nn.Module]], dict[str, list[dict]], dict[str, ReplayRecorder], dict[str, float]]:
    """Part D for each task: fresh 1x1 heads, one per loss, on the frozen body's cached features.

    Also returns, on rank 0, each task's training replay (its heads' masks on a few fixed
    validation images at the training size, after every epoch, predicted from the cached
    features) and the seconds spent recording it."""
    run_config = run_config or RunConfig(Path("."), Path("."), data.train.images.device)
    ctx, checkpointing = run_config.ctx, run_config.checkpointing
    with timer("features"):
        train_features = seg_train.compute_features(body, data.train.images, batch_size)
        val_features = {n: seg_train.compute_features(body, v.images, batch_size) for n, v in data.val.items()}
    # A head's checkpoint resumes only on the same body, data and seed.
    identity = {"seed": seed, "body_sha256": tensors_digest(*body.state_dict().values()), "sources": list(data.description)}
    picks = replay_images(data.val)
    replay_features = torch.cat([val_features[n][i.to(val_features[n].device)] for n, i in picks.items()])
    replay_names = [f"{n}:{data.val[n].names[i]}" for n, idx in picks.items() for i in idx.tolist()]
    replay_photos = torch.cat([data.val[n].images[i.to(data.val[n].images.device)] for n, i in picks.items()])
    replay_truth = torch.cat([data.val[n].masks[i.to(data.val[n].masks.device)] for n, i in picks.items()]) == 1
    size = tuple(data.train.masks.shape[-2:])
    heads: dict[str, dict[str, torch.nn.Module]] = {}
    histories: dict[str, list[dict]] = {}
    replays: dict[str, ReplayRecorder] = {}
    replay_seconds: dict[str, float] = {}
    for task, names in tasks.items():
        wanted = torch.tensor([data.train.source_names.index(n) for n in names], device=data.train.sources.device)
        index = torch.isin(data.train.sources, wanted)
        val_x = torch.cat([val_features[n] for n in names])
        val_y = torch.cat([data.val[n].masks for n in names])
        heads[task] = {}
        recorder = None
        if ctx.is_main and replay_names:
            recorder = replays[task] = ReplayRecorder("segmentation", replay_names)
            # Epoch 0: what the heads are shown, and the true masks.
            recorder.record(0, "photo", replay_photos.permute(0, 2, 3, 1).cpu().numpy())
            recorder.record(0, "truth", replay_truth.cpu().numpy())
            replay_seconds[task] = 0.0
        for loss in HEAD_NAMES:
            on_epoch = None
            if recorder is not None:
                def on_epoch(epoch: int, head: torch.nn.Module, loss: str = loss, recorder: ReplayRecorder = recorder,
                             task: str = task) -> None:
                    started = time.perf_counter()
                    with torch.inference_mode():
                        masks = seg_losses.predicted_masks(head_logits(head, replay_features, size))
                    recorder.record(epoch, loss, masks.cpu().numpy())
                    replay_seconds[task] += time.perf_counter() - started

            with timer(f"head_{task}_{loss}"):
                heads[task][loss], histories[f"{task}/{loss}"] = seg_train.train_head(
                    loss, train_features[index], data.train.masks[index], val_x, val_y, recipe,
                    generator=torch.Generator().manual_seed(seed), ctx=ctx, checkpointing=checkpointing,
                    stage=seg_train.head_stage(task, loss), identity=identity, on_epoch=on_epoch,
                )
            if recorder is not None:
                for row in histories[f"{task}/{loss}"]:
                    recorder.record_losses(row["epoch"], loss, {k: v for k, v in row.items() if k != "epoch"})
    return heads, histories, replays, replay_seconds


def run(config: SegmentationConfig, run_config: RunConfig) -> dict[str, Any]:
    """Get the body, train every task's heads, score, save; returns the training report's
    section, ``{"segmentation": {...}}`` (``{}`` on ranks other than 0, which only train)."""
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device, ctx = torch.device(run_config.device), run_config.ctx
    timer = StageTimer()
    sources = resolve_sources(list(config.data))
    tasks = resolve_tasks(list(config.tasks), sources)
    with timer("data"):
        data = load_data(sources, config.image_size, device, config.download)
    with timer("body"):
        body, body_history, origin = get_body(config, data, run_config)
        body_dtype = torch.float16 if _round_to_float16(body) else None
    recipe = seg_train.HEAD_RECIPES[config.head_recipe]
    heads, head_histories, replays, replay_seconds = train_heads(
        body, data, tasks, recipe, config.seed, config.body.batch_size, timer, run_config
    )
    if not ctx.is_main:  # rank 0 scores and writes; the others wait for it
        ctx.barrier()
        return {}
    result = TrainedSegmentation(tasks, body, body_dtype, body_history, origin, heads, head_histories,
                                 {"name": config.head_recipe, **recipe.to_dict()})
    score(result, data, config.image_size, device, timer)
    plots = outputs.plot_curves(Path(run_config.report_dir), body_history, head_histories)
    common = {
        "data": data.description, "image_size": config.image_size, "command": run_config.command,
        "regenerate": REGENERATE, "seed": config.seed, **run_config.hardware(),
    }
    outputs.save_segmentation(
        run_config.weights_dir, body, body_dtype, _body_metadata(common, result, timer), heads,
        _head_metadata(common, result, timer),
    )
    # Body and heads are in place: their checkpoints are spent.
    for stage in [seg_train.BODY_STAGE, *(seg_train.head_stage(t, loss) for t in tasks for loss in HEAD_NAMES)]:
        finish_stage(run_config.checkpointing, stage)
    replay_report = {}
    for task, recorder in replays.items():
        recorder.save(run_config.report_dir, replay_stem(task))
        head_seconds = sum(timer.wall[f"head_{task}_{loss}"] for loss in HEAD_NAMES)
        replay_report[task] = {
            "stem": replay_stem(task), "replay_seconds": round(replay_seconds[task], 4),
            "head_training_seconds": head_seconds,  # includes the recording
        }
    section = _report_section(config, result, data, timer, plots, run_config)
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
    working_size: int = 0
    working_size_scores: dict[int, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # {task: {loss: {source: metrics}}}


def score(result: TrainedSegmentation, data: SegmentationData, size: int, device: torch.device, timer: StageTimer) -> None:
    """Pick the inference size on training photos, then score every head on every source's
    validation photos at their own resolution (as ``colorseg.evaluate`` does)."""
    segmenter = Segmenter(result.body, result.heads, size, {}, device)
    with timer("working_size"):
        result.working_size, result.working_size_scores = _choose_working_size(segmenter, size, data.size_samples, result.tasks)
    with timer("evaluate"):
        by_source = {
            name: evaluate_samples(segmenter, samples, None, result.working_size) for name, samples in data.val_samples.items()
        }
        result.metrics = {
            task: {loss: {name: by_source[name][task][loss] for name in by_source} for loss in HEAD_NAMES} for task in result.tasks
        }


def _body_metadata(common: dict, result: TrainedSegmentation, timer: StageTimer) -> dict[str, Any]:
    origin = result.origin
    own_times = timer.of("data", "body", "working_size")
    return {
        **common, **origin,
        "tasks": list(result.tasks),
        "task_sources": result.tasks,
        "working_size": result.working_size,
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
            # Per source, at each validation photo's own (mask) resolution, as colorseg.evaluate
            # scores, with the body run at working_size.
            "metrics": {"val": result.metrics[task][loss]},
            "history": result.head_histories[f"{task}/{loss}"],
            **timer.of("features", f"head_{task}_{loss}"),
        }
        for task in result.tasks for loss in HEAD_NAMES
    }


def _report_section(
    config: SegmentationConfig, result: TrainedSegmentation, data: SegmentationData, timer: StageTimer,
    plots: list[str], run_config: RunConfig,
) -> dict[str, Any]:
    tasks, origin = result.tasks, result.origin
    return {
        "settings": {
            "source": origin["source"], "backbone": origin.get("backbone"), "image_size": config.image_size,
            "working_size": result.working_size, "tasks": tasks,
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
        "weights": [weights_io.SEG_BODY_STEM, *(weights_io.seg_head_stem(t, loss) for t in tasks for loss in HEAD_NAMES)],
        "plots": plots,
    }
