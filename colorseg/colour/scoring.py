"""Scoring the colour nets against a photo's own colours, the way training scores them.

Training asks each net for the nearest of the 24 palette colours at every pixel
(:func:`colorseg.colour.palette.label_images`) and measures the mean per-pixel cross-entropy and
the share of pixels whose likeliest colour is that one (:func:`colorseg.colour.train.colour_metrics`).
The same two numbers on a user's colour photo, at the working size the nets see, show on that
photo what the validation scores show on CIFAR horses; the quantised photo shows what the nets
were asked to predict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from colorseg.colour.palette import label_images
from colorseg.colour.train import colour_metrics


@dataclass
class PaletteTarget:
    """A photo's colours at the working size, snapped to the palette: what a net is scored against."""

    labels: torch.Tensor  # int64 [h, w], index of the nearest palette colour
    rgb: np.ndarray  # uint8 [h, w, 3], that palette colour


@dataclass(frozen=True)
class ColourScore:
    loss: float  # mean per-pixel cross-entropy against the palette labels (lower is better)
    accuracy: float  # share of pixels whose likeliest colour is the label, in [0, 1]


def palette_rgb(palette: torch.Tensor) -> np.ndarray:
    """The palette float [K, 3] in [0, 1] as uint8 [K, 3] colours, as pictures show it."""
    return (palette.detach().float().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def palette_target(rgb: np.ndarray, palette: torch.Tensor, shape: tuple[int, int]) -> PaletteTarget:
    """The colour photo uint8 [H, W, 3] resized to ``shape`` = (h, w) and labelled with its nearest
    palette colours, as training labels its uint8 32x32 photos.

    The resize is PIL's antialiased bilinear on uint8, the filter the nets' grey input is resized
    with (torch's ``antialias=True`` follows PIL); grey is the mean of R, G and B, so the target
    is the colour of the very picture the nets see, without a float copy of a large photo."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 [H, W, 3] photo, got {rgb.dtype} {list(rgb.shape)}")
    height, width = shape
    small = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))
    labels = label_images(torch.from_numpy(small.copy()).permute(2, 0, 1)[None], palette.cpu())[0]
    return PaletteTarget(labels, palette_rgb(palette)[labels.numpy()])


def score(logits: torch.Tensor, labels: torch.Tensor) -> ColourScore:
    """Loss and pixel accuracy of one net's logits [1, K, h, w] against labels int64 [h, w]."""
    if tuple(logits.shape[-2:]) != tuple(labels.shape):
        raise ValueError(f"labels {list(labels.shape)} do not match the logits' {list(logits.shape[-2:])}")
    sums = colour_metrics(logits.float(), labels.to(logits.device)[None])
    pixels = labels.numel()
    return ColourScore(loss=sums["loss"].item() / pixels, accuracy=sums["correct"].item() / pixels)
