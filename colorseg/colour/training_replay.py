"""Colour training replays: a net's colourizations of a few fixed validation images after
every epoch, written as <report dir>/replay_colour_<Net>.json + _argmax.png for the app's replay tab."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from colorseg.colour.inference import ColourModels, chroma_offset, colourize
from colorseg.replay import ReplayRecorder

REPLAY_IMAGES = 8  # validation images whose colourization the training replay shows


def replay_stem(name: str) -> str:
    """<report dir>/<stem>.json + <stem>_argmax.png: a net's colourizations after every epoch."""
    return f"replay_colour_{name}"


class ColourReplay:
    """A net's argmax colourization of ``REPLAY_IMAGES`` fixed validation images after every
    epoch, decoded by the app's own :func:`colorseg.colour.inference.colourize` (palette colour
    of the argmax, its chroma moved onto the grey input). Runs on rank 0, in eval mode under
    inference_mode and draws no random numbers, so training is exactly what it is without it;
    ``seconds`` is what recording cost. After a ``--resume`` it holds the epochs trained since."""

    def __init__(self, name: str, val_grey: torch.Tensor, palette: torch.Tensor, device: torch.device):
        self.name = name
        picks = torch.linspace(0, len(val_grey) - 1, min(REPLAY_IMAGES, len(val_grey))).round().long().unique()
        self.grey = [image[0].cpu().numpy() for image in val_grey[picks.to(val_grey.device)]]  # float32 [H, W] in [0, 1]
        self.models = ColourModels(palette, chroma_offset(palette).to(device), {}, {}, device=device)
        self.recorder = ReplayRecorder("colour", [f"val_{i:04d}" for i in picks.tolist()])
        self.seconds = 0.0

    def __call__(self, epoch: int, row: dict, model: nn.Module) -> None:  # a training.fit hook
        started = time.perf_counter()
        was_training = model.training
        self.models.nets[self.name] = model.eval()
        try:
            frames = [colourize(self.models, grey, [self.name], working_size=max(grey.shape), decoding="argmax")[self.name].rgb
                      for grey in self.grey]
        finally:
            model.train(was_training)
            self.models.nets.clear()
        self.recorder.record(epoch, "argmax", np.stack(frames))
        self.recorder.record_losses(epoch, "metrics", {k: v for k, v in row.items() if k not in ("epoch", "seconds")})
        self.seconds += time.perf_counter() - started
