"""Colour training replays: a net's colourizations of the repository's CIFAR-sized example photos
(examples/cifar32/, 32 px copies of the free farm-animal photos, never CIFAR images) after every
epoch, written as <report dir>/replay_colour_<Net>.json + PNG strips for the app's replay tab. The
replay also keeps, at epoch 0, each photo's own colours and its palette-quantised target: what the
net is trained to predict."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from colorseg.colour.data import to_grey
from colorseg.colour.inference import ColourModels, chroma_offset, colourize
from colorseg.colour.palette import label_images
from colorseg.paths import EXAMPLES_DIR, IMAGE_SUFFIXES
from colorseg.replay import ReplayRecorder

REPLAY_FOLDER = EXAMPLES_DIR / "cifar32"


def replay_stem(name: str) -> str:
    """<report dir>/<stem>.json + <stem>_<key>.png: a net's colourizations after every epoch."""
    return f"replay_colour_{name}"


def example_photos(folder: Path = REPLAY_FOLDER) -> tuple[list[str], torch.Tensor] | None:
    """(names, uint8 RGB [K, 3, 32, 32]) of the CIFAR-sized examples, or None when absent (an
    installed package without the repository's examples/)."""
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not paths:
        return None
    photos = []
    for path in paths:
        with Image.open(path) as image:
            photos.append(torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1))
    return [p.stem for p in paths], torch.stack(photos)


class ColourReplay:
    """A net's argmax colourization of the example photos after every epoch, decoded by the app's
    own :func:`colorseg.colour.inference.colourize` (palette colour of the argmax, its chroma moved
    onto the grey input). A ``training.fit`` hook: runs on rank 0, in eval mode under
    inference_mode and draws no random numbers, so training is exactly what it is without it;
    ``seconds`` is what recording cost. After a ``--resume`` it holds the epochs trained since."""

    def __init__(self, name: str, names: list[str], photos: torch.Tensor, palette: torch.Tensor, device: torch.device):
        self.name = name
        self.grey = [image[0].numpy() for image in to_grey(photos)]  # float32 [H, W] in [0, 1]
        self.models = ColourModels(palette, chroma_offset(palette).to(device), {}, {}, device=device)
        self.recorder = ReplayRecorder("colour", names)
        self.recorder.record(0, "original", photos.permute(0, 2, 3, 1).numpy())
        target = (palette.cpu()[label_images(photos, palette).cpu()] * 255).round().to(torch.uint8)  # [K, H, W, 3]
        self.recorder.record(0, "target", target.numpy())
        self.seconds = 0.0

    def __call__(self, epoch: int, row: dict, model: nn.Module) -> None:  # a training.fit hook
        started = time.perf_counter()
        was_training = model.training
        self.models.nets[self.name] = model.eval()
        try:
            frames = [
                colourize(self.models, grey, [self.name], working_size=max(grey.shape), decoding="argmax")[
                    self.name
                ].rgb
                for grey in self.grey
            ]
        finally:
            model.train(was_training)
            self.models.nets.clear()
        self.recorder.record(epoch, "argmax", np.stack(frames))
        self.recorder.record_losses(epoch, "metrics", {k: v for k, v in row.items() if k not in ("epoch", "seconds")})
        self.seconds += time.perf_counter() - started
