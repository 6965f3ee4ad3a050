"""Helpers shared by the library's tests (no tests here): repository paths, tiny random weights,
sample photos and a Hub API stand-in. The data under SHARED_DATA is passed explicitly; the
product itself never looks outside the repository."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from colorseg import weights
from colorseg.colour.models import COLOUR_MODEL_NAMES, COLOUR_STEMS
from colorseg.colour.palette import NUM_COLOURS, save_palette
from colorseg.files import sha256_of
from colorseg.registry import create_model
from colorseg.segmentation.inference import SEG_BODY_STEM, seg_head_stem
from colorseg.segmentation.models import DeepLabV3Body, DeepLabV3Head
from colorseg.weights import save_module

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
HEAD_LOSSES = ("cross_entropy", "soft_iou")


def read_picture(path: str | Path) -> np.ndarray:
    """A picture file's pixels (the app's and the CLI's outputs)."""
    with Image.open(path) as image:
        return np.asarray(image)


def huge_png(width: int, height: int) -> bytes:
    """A valid all-black RGB PNG declaring width x height, built row by row (a few hundred kB
    for 13000 x 13000): what a decompression-bomb upload looks like."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor, row, parts = zlib.compressobj(9), b"\0" * (1 + 3 * width), []
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


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
            net,
            directory,
            COLOUR_STEMS[name],
            architecture=name,
            constructor=constructor,
            metadata={"metrics": {"val_loss": 3.1, "val_accuracy": 0.05}, "command": "random test weights"},
        )
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


def save_tiny_unet(directory):
    torch.manual_seed(0)
    model = create_model("UNet", num_filters=4, num_colours=6).eval()
    save_module(
        model,
        directory,
        "net",
        architecture="UNet",
        constructor={"num_filters": 4, "num_colours": 6},
        metadata={"regenerate": "python train_all.py --only colour"},
    )
    return model


def save_tiny_segmentation_weights(
    directory: Path, size: int = 64, tasks=("objects", "horses")
) -> tuple[DeepLabV3Body, dict]:
    torch.manual_seed(0)
    body = DeepLabV3Body()
    # Move BatchNorm statistics off their defaults so that eval mode is not trivial.
    body.train()
    with torch.no_grad():
        body(torch.randn(4, 3, size, size))
    body.eval()
    body.load_state_dict({k: v.half().to(v.dtype) for k, v in body.state_dict().items()})  # what float16 stores
    path = weights.save_module(
        body,
        directory,
        SEG_BODY_STEM,
        architecture="DeepLabV3Body",
        constructor={"backbone": "mobilenet_v3_large"},
        metadata={"image_size": size, "tasks": list(tasks)},
        dtype=torch.float16,
    )
    heads = {}
    for task in tasks:
        heads[task] = {}
        for loss in HEAD_LOSSES:
            heads[task][loss] = DeepLabV3Head().eval()
            weights.save_module(
                heads[task][loss],
                directory,
                seg_head_stem(task, loss),
                architecture="DeepLabV3Head",
                constructor={},
                metadata={"body_sha256": sha256_of(path), "task": task, "loss": loss},
            )
    return body, heads


class RecordingApi:
    """Stands in for huggingface_hub.HfApi and records what would be sent."""

    instances: ClassVar[list[RecordingApi]] = []

    def __init__(self, token=None):
        self.token, self.calls = token, []
        RecordingApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        self.calls.append(("create_commit", repo_id, list(operations), kwargs))

        class Commit:
            commit_url = f"https://hub.invalid/{repo_id}/commit/abc"

        return Commit()
