"""Helpers shared by the app's tests (tests/app/) and some library tests: tiny random weights,
a stand-in segmenter, sample files.

It holds no tests itself (library tests import it by this name, so it stays here). The
stand-in segmenter follows colorseg.segmentation.inference's API (load_segmenter / Segmenter.tasks /
.probabilities / .predict) so the app's tests need no trained DeepLabV3 weights: they
exercise the app's handling of its results. The app's tests hand it to the app
(load_models(load_segmenter=...)).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from support import make_colour_weights, photo, read_picture, save_photo  # noqa: F401  (shared with the library tests)

from colorseg.errors import WeightsError

SEGMENTER_MARKER = "fake_segmenter.json"


@dataclass
class FakeResult:
    prob_cross_entropy: np.ndarray
    prob_soft_iou: np.ndarray
    mask_cross_entropy: np.ndarray
    mask_soft_iou: np.ndarray


class FakeSegmenter:
    """Foreground = bright pixels; the two 'heads' use different thresholds so they disagree,
    and each task shifts the brightness so tasks differ too. Follows Segmenter's API
    (.tasks, .probabilities, .predict); counts body passes in ``body_passes``."""

    description: ClassVar[dict] = {
        "body": {"architecture": "FakeBody", "metrics": {}},
        "heads": {
            "cross_entropy": {"architecture": "FakeHead", "metrics": {"iou": 0.5}},
            "soft_iou": {"architecture": "FakeHead", "metrics": {"iou": 0.6}},
        },
    }
    TASK_SHIFT: ClassVar[dict] = {"objects": 0.0, "flowers": 0.2, "horses": -0.1}

    def __init__(self, tasks: tuple[str, ...] = ("objects", "flowers", "horses")):
        self.tasks = tuple(tasks)
        self.body_passes = 0

    def probabilities(self, image: np.ndarray, working_size: int | None = None, tasks=None) -> dict:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        tasks = self.tasks if tasks is None else tasks
        for task in tasks:
            if task not in self.tasks:
                raise ValueError(f"no heads for task {task!r}")
        self.body_passes += 1
        brightness = torch.from_numpy(image.astype(np.float32).mean(axis=2) / 255)
        out = {}
        for task in tasks:
            prob_ce = (brightness - self.TASK_SHIFT[task]).clamp(0, 1)
            out[task] = {"cross_entropy": prob_ce, "soft_iou": (prob_ce * 1.4).clamp(0, 1)}
        return out

    def predict(self, image: np.ndarray, working_size: int | None = None, task: str = "objects") -> FakeResult:
        probs = {loss: prob.numpy() for loss, prob in self.probabilities(image, working_size, (task,))[task].items()}
        prob_ce, prob_iou = probs["cross_entropy"], probs["soft_iou"]
        return FakeResult(prob_ce, prob_iou, prob_ce > 0.5, prob_iou > 0.5)


def load_fake_segmenter(weights_dir, device="cpu") -> FakeSegmenter:
    """The fake loads when the weights folder holds SEGMENTER_MARKER (its text, when not
    empty, lists the tasks) and raises WeightsError otherwise, as the real loader does."""
    marker = Path(weights_dir) / SEGMENTER_MARKER
    if not marker.is_file():
        raise WeightsError(f"missing segmentation weights in {weights_dir}")
    tasks = [t for t in marker.read_text().split() if t in FakeSegmenter.TASK_SHIFT]
    return FakeSegmenter(tuple(tasks)) if tasks else FakeSegmenter()


def make_all_weights(directory: Path) -> Path:
    make_colour_weights(directory)
    (directory / SEGMENTER_MARKER).write_text("objects flowers horses")
    return directory


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_segmentation_weights(
    directory: Path, image_size: int = 64, tasks: tuple[str, ...] = ("objects", "flowers", "horses")
) -> Path:
    """A random DeepLabV3 body and each task's two random heads saved as colorseg.segmentation.pipeline
    saves them, so colorseg.segmentation.inference.load_segmenter (the real one) loads them."""
    from colorseg.files import sha256_of
    from colorseg.segmentation.inference import SEG_BODY_STEM, seg_head_stem
    from colorseg.segmentation.losses import SEG_LOSSES
    from colorseg.segmentation.models import DeepLabV3Body, DeepLabV3Head
    from colorseg.weights import save_module

    torch.manual_seed(0)
    body_path = save_module(
        DeepLabV3Body(),
        directory,
        SEG_BODY_STEM,
        architecture="DeepLabV3Body",
        constructor={"backbone": "mobilenet_v3_large"},
        metadata={"image_size": image_size, "tasks": list(tasks), "metrics": {}},
        dtype=torch.float16,
    )
    for task in tasks:
        for loss in SEG_LOSSES:
            save_module(
                DeepLabV3Head(),
                directory,
                seg_head_stem(task, loss),
                architecture="DeepLabV3Head",
                constructor={},
                metadata={"task": task, "loss": loss, "body_sha256": sha256_of(body_path), "metrics": {"iou": 0.5}},
            )
    return directory
