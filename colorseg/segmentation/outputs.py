"""What a segmentation run scores and writes: the inference size chosen on training photos, every
head scored on every source's validation photos, the body and heads as one weight set with their
descriptions, the report's section and the curves."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from colorseg.segmentation import data as seg_data
from colorseg.segmentation.inference import (
    FLIP_AVERAGE,
    SEG_BODY_STEM,
    Segmenter,
    evaluate_samples,
    seg_head_stem,
)
from colorseg.segmentation.losses import SEG_LOSSES
from colorseg.segmentation.models import DEFAULT_BACKBONE
from colorseg.segmentation.sources import SegmentationData
from colorseg.training.config import RunConfig, StageTimer
from colorseg.weights import WeightSet

BODY_PLOT = "seg_body_curves.png"
HEADS_PLOT = "seg_heads_curves.png"


def save_segmentation(
    weights_dir: Path,
    body: torch.nn.Module,
    body_dtype,
    body_metadata: dict,
    heads: dict[str, dict[str, torch.nn.Module]],
    head_metadata: dict[tuple[str, str], dict],
) -> None:
    """Write the body and every head, tied to it by the body's sha256, as one set: a kill at
    any instant leaves either the previous body and heads or the new ones."""
    with WeightSet(weights_dir) as weight_set:
        weight_set.save_module(
            body,
            SEG_BODY_STEM,
            architecture=body_metadata.get("architecture", "DeepLabV3Body"),
            constructor=body_metadata.get("constructor", {"backbone": body_metadata.get("backbone", DEFAULT_BACKBONE)}),
            metadata=body_metadata,
            dtype=body_dtype,
        )
        body_sha256 = weight_set.digest(SEG_BODY_STEM)
        for (task, loss), metadata in head_metadata.items():
            weight_set.save_module(
                heads[task][loss],
                seg_head_stem(task, loss),
                architecture="DeepLabV3Head",
                constructor={},
                metadata={**metadata, "body_sha256": body_sha256},
            )
    # Heads of tasks this run did not train belong to the previous body (the new body's JSON
    # lists its tasks, so they are never loaded): remove them.
    kept = {seg_head_stem(t, loss) for t, loss in head_metadata}
    for stale in Path(weights_dir).glob("seg_head_*.json"):
        if stale.stem not in kept:
            stale.with_suffix(".safetensors").unlink(missing_ok=True)
            stale.unlink()


def plot_curves(report_dir: Path, body_history: list[dict], head_histories: dict[str, list[dict]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if body_history:
        fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(10, 4))
        loss_ax.plot([r["epoch"] for r in body_history], [r["train_loss"] for r in body_history], "k-", label="train")
        scored = [r for r in body_history if any(k.endswith("_iou") and k.startswith("val_") for k in r)]
        for i, key in enumerate(sorted({k for r in scored for k in r if k.startswith("val_") and k.endswith("_iou")})):
            source, colour = key[len("val_") : -len("_iou")], f"C{i}"  # one colour a source in both panels
            iou_ax.plot(
                [r["epoch"] for r in scored], [r[key] for r in scored], "o-", color=colour, label=f"{source} IoU"
            )
            loss_ax.plot(
                [r["epoch"] for r in scored],
                [r[f"val_{source}_loss"] for r in scored],
                "o--",
                color=colour,
                label=f"{source} validation",
            )
        loss_ax.set(title="body: loss", xlabel="epoch")
        loss_ax.legend()
        iou_ax.set(title="body: validation IoU per source", xlabel="epoch", ylim=(0, 1))
        iou_ax.legend()
        fig.tight_layout()
        fig.savefig(report_dir / BODY_PLOT, dpi=100)
        plt.close(fig)
        written.append(BODY_PLOT)
    fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, history in head_histories.items():
        epochs = [r["epoch"] for r in history]
        loss_ax.plot(epochs, [r["train_loss"] for r in history], label=f"{name} train")
        iou_ax.plot(epochs, [r["val_iou"] for r in history], label=f"{name}")
    loss_ax.set(title="heads on cached features: training loss", xlabel="epoch")
    iou_ax.set(title="heads: validation IoU (task's sources)", xlabel="epoch", ylim=(0, 1))
    loss_ax.legend(fontsize=7)
    iou_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(report_dir / HEADS_PLOT, dpi=100)
    plt.close(fig)
    return [*written, HEADS_PLOT]


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


def _choose_working_size(
    segmenter: Segmenter,
    size: int,
    samples: dict[str, list[seg_data.Sample]],
    tasks: dict[str, list[str]],
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
        ious = [
            by_source[name][task][loss]["iou"] for task, names in tasks.items() for name in names for loss in SEG_LOSSES
        ]
        scores[candidate] = sum(ious) / len(ious)
    return max(candidates, key=scores.get), scores


def score(
    result: TrainedSegmentation, data: SegmentationData, size: int, device: torch.device, timer: StageTimer
) -> None:
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
            name: evaluate_samples(segmenter, samples, None, result.working_size)
            for name, samples in data.val_samples.items()
        }
        result.metrics = {
            task: {loss: {name: by_source[name][task][loss] for name in by_source} for loss in SEG_LOSSES}
            for task in result.tasks
        }


def body_metadata(common: dict, result: TrainedSegmentation, timer: StageTimer) -> dict[str, Any]:
    origin = result.origin
    own_times = timer.of("data", "body", "working_size")
    return {
        **common,
        **origin,
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


def head_metadata(common: dict, result: TrainedSegmentation, timer: StageTimer) -> dict[tuple[str, str], dict]:
    return {
        (task, loss): {
            **common,
            "task": task,
            "task_sources": result.tasks[task],
            "loss": loss,
            "body_source": result.origin["source"],
            "recipe": result.head_recipe,
            # Per source, at each validation photo's own (mask) resolution, as colorseg.cli.evaluate
            # scores, with the body run at working_size (flip-averaged: the body's JSON says).
            "metrics": {"val": result.metrics[task][loss]},
            "history": result.head_histories[f"{task}/{loss}"],
            **timer.of("features", f"head_{task}_{loss}"),
        }
        for task in result.tasks
        for loss in SEG_LOSSES
    }


def report_section(
    seed: int,
    result: TrainedSegmentation,
    data: SegmentationData,
    timer: StageTimer,
    plots: list[str],
    run_config: RunConfig,
) -> dict[str, Any]:
    tasks, origin = result.tasks, result.origin
    return {
        "settings": {
            "source": origin["source"],
            "backbone": origin.get("backbone"),
            "image_size": result.image_size,
            "working_size": result.working_size,
            "flip_average": FLIP_AVERAGE,
            "tasks": tasks,
            "body_recipe": origin.get("recipe"),
            "head_recipe": result.head_recipe,
            "seed": seed,
            "threads": torch.get_num_threads(),
            **run_config.hardware(),
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
