"""Helpers shared by the app's tests: tiny random weights, a stand-in segmenter, sample files.

Named test_app_*.py to sit with the app's tests; it holds no tests itself. The stand-in
segmenter follows colorseg.segment's documented API (load_segmenter / Segmenter.predict
/ SegmentationResult) so the app's tests neither need trained DeepLabV3 weights nor wait
for that module: they exercise the app's handling of its results.
"""

from __future__ import annotations

import socket
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from colorseg.colour_models import COLOUR_MODEL_NAMES
from colorseg.palette import NUM_COLOURS, save_palette
from colorseg.registry import create_model
from colorseg.weights_io import COLOUR_STEMS, WeightsError, save_module

SEGMENTER_MARKER = "fake_segmenter.json"


def make_colour_weights(directory: Path, names=COLOUR_MODEL_NAMES, num_filters: int = 4, seed: int = 0) -> Path:
    """Palette + colour nets with random weights (4 filters keep them tiny and fast)."""
    torch.manual_seed(seed)
    palette = torch.rand(NUM_COLOURS, 3)
    save_palette(palette, directory, {"what": "random test palette"})
    constructor = {"kernel": 3, "num_filters": num_filters, "num_colours": NUM_COLOURS, "num_in_channels": 1}
    for name in names:
        net = create_model(name, **constructor)
        # Random BatchNorm statistics, so the random nets do not all predict one colour.
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.05, 0.5)
        save_module(
            net, directory, COLOUR_STEMS[name], architecture=name, constructor=constructor,
            metadata={"metrics": {"val_loss": 3.1, "val_accuracy": 0.05}, "command": "random test weights"},
        )
    return directory


@dataclass
class FakeResult:
    prob_cross_entropy: np.ndarray
    prob_soft_iou: np.ndarray
    mask_cross_entropy: np.ndarray
    mask_soft_iou: np.ndarray


class FakeSegmenter:
    """Foreground = bright pixels; the two 'heads' use different thresholds so they disagree."""

    description: ClassVar[dict] = {
        "body": {"architecture": "FakeBody", "metrics": {}},
        "heads": {
            "cross_entropy": {"architecture": "FakeHead", "metrics": {"iou": 0.5}},
            "soft_iou": {"architecture": "FakeHead", "metrics": {"iou": 0.6}},
        },
    }

    def predict(self, image: np.ndarray, working_size: int | None = None) -> FakeResult:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        brightness = image.astype(np.float32).mean(axis=2) / 255
        prob_ce, prob_iou = brightness, np.clip(brightness * 1.4, 0, 1)
        return FakeResult(prob_ce, prob_iou, prob_ce > 0.5, prob_iou > 0.5)


def install_fake_segment_module(monkeypatch) -> None:
    """Make ``from colorseg.segment import load_segmenter`` give the fake, whether or not the real one exists.

    The fake loads when the weights folder holds SEGMENTER_MARKER and raises WeightsError otherwise,
    as the real loader does for missing weights.
    """
    module = types.ModuleType("colorseg.segment")

    def load_segmenter(weights_dir, device="cpu"):
        if not (Path(weights_dir) / SEGMENTER_MARKER).is_file():
            raise WeightsError(f"missing segmentation weights in {weights_dir}")
        return FakeSegmenter()

    module.load_segmenter = load_segmenter
    monkeypatch.setitem(sys.modules, "colorseg.segment", module)
    import colorseg

    monkeypatch.setattr(colorseg, "segment", module, raising=False)


def make_all_weights(directory: Path) -> Path:
    make_colour_weights(directory)
    (directory / SEGMENTER_MARKER).write_text("{}")
    return directory


def photo(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """A colourful uint8 [H, W, 3] picture: smooth gradients plus a bright disc (an 'object')."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, 90)], axis=2)
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 4) ** 2
    rgb[disc] = 240
    return np.clip(rgb + rng.integers(0, 10, rgb.shape), 0, 255).astype(np.uint8)


def save_photo(path: Path, width: int = 64, height: int = 48, mode: str = "RGB", **save_kwargs) -> Path:
    image = Image.fromarray(photo(width, height))
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, **save_kwargs)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_segmentation_weights(directory: Path, image_size: int = 64) -> Path:
    """A random DeepLabV3 body and two random heads saved as colorseg.seg_pipeline saves them,
    so colorseg.segment.load_segmenter (the real one) loads them."""
    from colorseg.seg_models import DeepLabV3Body, DeepLabV3Head
    from colorseg.weights_io import SEG_BODY_STEM, SEG_HEAD_STEMS, sha256_of

    torch.manual_seed(0)
    body_path = save_module(
        DeepLabV3Body(), directory, SEG_BODY_STEM, architecture="DeepLabV3Body",
        constructor={"backbone": "mobilenet_v3_large"}, metadata={"image_size": image_size, "metrics": {}},
        dtype=torch.float16,
    )
    for name, stem in SEG_HEAD_STEMS.items():
        save_module(
            DeepLabV3Head(), directory, stem, architecture="DeepLabV3Head", constructor={},
            metadata={"loss": name, "body_sha256": sha256_of(body_path), "metrics": {"iou": 0.5}},
        )
    return directory
