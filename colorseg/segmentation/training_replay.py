"""Segmentation training replays: each task's heads' masks on a few fixed validation images
after every epoch, written as reports/replay_seg_<task>.json + .png for the app's replay tab."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from colorseg.replay import ReplayRecorder
from colorseg.segmentation import data as seg_data
from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation.models import head_logits
from colorseg.segmentation.sources import SegmentationData

REPLAY_IMAGES_PER_SOURCE = 2  # validation images per source whose masks the replay shows


def replay_stem(task: str) -> str:
    """reports/<stem>.json + <stem>_<loss>.png: the task's heads' masks after every epoch."""
    return f"replay_seg_{task}"


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


class TaskReplays:
    """Every task's replay: its heads' masks on the :func:`replay_images` at the training size,
    after every epoch, predicted from the cached features. Recorded on rank 0 only (``enabled``);
    ``seconds`` is what recording cost, per task."""

    def __init__(self, data: SegmentationData, val_features: dict[str, torch.Tensor], enabled: bool):
        picks = replay_images(data.val)
        self.features = torch.cat([val_features[n][i.to(val_features[n].device)] for n, i in picks.items()])
        self.names = [f"{n}:{data.val[n].names[i]}" for n, idx in picks.items() for i in idx.tolist()]
        self.photos = torch.cat([data.val[n].images[i.to(data.val[n].images.device)] for n, i in picks.items()])
        self.truth = torch.cat([data.val[n].masks[i.to(data.val[n].masks.device)] for n, i in picks.items()]) == 1
        self.size = tuple(data.train.masks.shape[-2:])
        self.enabled = enabled and bool(self.names)
        self.recorders: dict[str, ReplayRecorder] = {}
        self.seconds: dict[str, float] = {}

    def start(self, task: str) -> None:
        """A task's recorder, before its heads train."""
        if not self.enabled:
            return
        recorder = self.recorders[task] = ReplayRecorder("segmentation", self.names)
        # Epoch 0: what the heads are shown, and the true masks.
        recorder.record(0, "photo", self.photos.permute(0, 2, 3, 1).cpu().numpy())
        recorder.record(0, "truth", self.truth.cpu().numpy())
        self.seconds[task] = 0.0

    def hooks(self, task: str, loss: str) -> list[Callable[[int, dict, torch.nn.Module], None]]:
        """``train_head``'s hooks for one head (none when nothing is recorded)."""
        recorder = self.recorders.get(task)
        if recorder is None:
            return []

        def record(epoch: int, row: dict, cached_head: torch.nn.Module) -> None:
            started = time.perf_counter()
            with torch.inference_mode():
                masks = seg_losses.predicted_masks(head_logits(cached_head.head, self.features, self.size))
            recorder.record(epoch, loss, masks.cpu().numpy())
            self.seconds[task] += time.perf_counter() - started

        return [record]

    def record_history(self, task: str, loss: str, history: list[dict]) -> None:
        """A trained head's per-epoch losses and metrics."""
        recorder = self.recorders.get(task)
        if recorder is not None:
            for row in history:
                recorder.record_losses(row["epoch"], loss, {k: v for k, v in row.items() if k != "epoch"})

    def save(self, report_dir: Path, head_seconds: Callable[[str], float]) -> dict[str, dict]:
        """Write every task's replay; returns the report's ``replays`` section
        (``head_seconds(task)``: the wall seconds its heads trained)."""
        report = {}
        for task, recorder in self.recorders.items():
            recorder.save(report_dir, replay_stem(task))
            report[task] = {
                "stem": replay_stem(task), "replay_seconds": round(self.seconds[task], 4),
                "head_training_seconds": head_seconds(task),  # includes the recording
            }
        return report
