"""Segmentation training replays on the repository's own example photos, for the app's replay tab:

- ``replay_seg_body``: the ImageNet body's temporary head after every fine-tuning epoch (how a
  classifier's features become "which pixels are the object");
- ``replay_seg_<task>``: each task's two heads after every head epoch, from the frozen body's
  features (Part D: what a last layer alone can learn).

The photos are the free farm-animal examples (examples/*.webp), never data-set images, so the
replays ship with the weights and play on a fresh clone and on the Space. Beside them the replay
keeps rembg's U²-Net-p mask of each photo (examples/masks/), a reference to compare with, not
ground truth. Recording runs on rank 0, in eval mode, under inference_mode and draws no random
numbers: training is exactly what it is without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorseg.paths import EXAMPLES_DIR
from colorseg.replay import ReplayRecorder
from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation.data import resize_images, resize_masks
from colorseg.segmentation.models import head_logits

REPLAY_PHOTOS = ("horse", "dog", "sheep", "cat", "chicken", "owl")  # examples/<name>.webp
REFERENCE_KEY = "u2netp_reference"  # the replay key of the reference masks
BODY_STEM = "replay_seg_body"


def replay_stem(task: str) -> str:
    """reports/<stem>.json + <stem>_<loss>.png: the task's heads' masks after every epoch."""
    return f"replay_seg_{task}"


@dataclass
class ReplayPhotos:
    names: list[str]
    photos: torch.Tensor  # uint8 [K, 3, S, S], squeezed to a square as the body sees photos
    reference: torch.Tensor  # bool [K, S, S]: U²-Net-p's masks


def example_photos(size: int, device: torch.device, folder: Path = EXAMPLES_DIR) -> ReplayPhotos | None:
    """The replay photos at ``size`` px, or None when the examples are not there (an installed
    package without the repository's examples/)."""
    names = [n for n in REPLAY_PHOTOS if (folder / f"{n}.webp").is_file() and (folder / "masks" / f"{n}.png").is_file()]
    if not names:
        return None
    photos, masks = [], []
    for name in names:
        with Image.open(folder / f"{name}.webp") as photo, Image.open(folder / "masks" / f"{name}.png") as mask:
            rgb = torch.from_numpy(np.asarray(photo.convert("RGB")).copy()).permute(2, 0, 1)[None]
            photos.append(resize_images(rgb, (size, size)).round().clamp(0, 255).to(torch.uint8)[0])
            masks.append(
                resize_masks(
                    torch.from_numpy((np.asarray(mask.convert("L")) > 127).astype(np.uint8))[None], (size, size)
                )[0]
                == 1
            )
    return ReplayPhotos(names, torch.stack(photos).to(device), torch.stack(masks).to(device))


def _new_recorder(photos: ReplayPhotos) -> ReplayRecorder:
    recorder = ReplayRecorder("segmentation", photos.names)
    # Epoch 0: what the model is shown, and U²-Net-p's answer to compare with.
    recorder.record(0, "photo", photos.photos.permute(0, 2, 3, 1).cpu().numpy())
    recorder.record(0, REFERENCE_KEY, photos.reference.cpu().numpy())
    return recorder


class BodyReplay:
    """A ``training.fit`` hook for the body's fine-tuning: the temporary head's masks on the photos."""

    def __init__(self, photos: ReplayPhotos):
        self.photos, self.recorder, self.seconds = photos, _new_recorder(photos), 0.0

    def __call__(self, epoch: int, row: dict, model: torch.nn.Module) -> None:
        started = time.perf_counter()
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            logits = head_logits(
                model.head, model.body(self.photos.photos.float()), tuple(self.photos.reference.shape[-2:])
            )
        model.train(was_training)
        self.recorder.record(epoch, "mask", seg_losses.predicted_masks(logits).cpu().numpy())
        self.recorder.record_losses(epoch, "body", {k: v for k, v in row.items() if k != "epoch"})
        self.seconds += time.perf_counter() - started

    def save(self, report_dir: Path) -> dict:
        self.recorder.save(report_dir, BODY_STEM)
        return {"stem": BODY_STEM, "replay_seconds": round(self.seconds, 4)}


class TaskReplays:
    """Every task's replay: its heads' masks on the photos at the training size after every epoch,
    from the frozen body's features (computed once). Disabled (no hooks, nothing saved) off rank 0
    or without photos; ``seconds`` is what recording cost, per task."""

    def __init__(self, body: torch.nn.Module, photos: ReplayPhotos | None, enabled: bool):
        self.photos = photos
        self.enabled = enabled and photos is not None
        self.features = None
        if self.enabled:
            body.eval()
            with torch.inference_mode():
                self.features = body(photos.photos.float())
        self.recorders: dict[str, ReplayRecorder] = {}
        self.seconds: dict[str, float] = {}

    def start(self, task: str) -> None:
        """A task's recorder, before its heads train."""
        if self.enabled:
            self.recorders[task] = _new_recorder(self.photos)
            self.seconds[task] = 0.0

    def hooks(self, task: str, loss: str) -> list[Callable[[int, dict, torch.nn.Module], None]]:
        """``train_head``'s hooks for one head (none when nothing is recorded)."""
        recorder = self.recorders.get(task)
        if recorder is None:
            return []

        def record(epoch: int, row: dict, cached_head: torch.nn.Module) -> None:
            started = time.perf_counter()
            with torch.inference_mode():
                size = tuple(self.photos.reference.shape[-2:])
                masks = seg_losses.predicted_masks(head_logits(cached_head.head, self.features, size))
            recorder.record(epoch, loss, masks.cpu().numpy())
            recorder.record_losses(epoch, loss, {k: v for k, v in row.items() if k != "epoch"})
            self.seconds[task] += time.perf_counter() - started

        return [record]

    def save(self, report_dir: Path, head_seconds: Callable[[str], float]) -> dict[str, dict]:
        """Write every task's replay; returns the report's ``replays`` section
        (``head_seconds(task)``: the wall seconds its heads trained)."""
        report = {}
        for task, recorder in self.recorders.items():
            recorder.save(report_dir, replay_stem(task))
            report[task] = {
                "stem": replay_stem(task),
                "replay_seconds": round(self.seconds[task], 4),
                "head_training_seconds": head_seconds(task),  # includes the recording
            }
        return report
