"""Colourize a greyscale photo of any size with the assignment's nets (Parts A-C).

The nets were trained on 32x32 CIFAR horses and predict, for every pixel, a
distribution over the 24 palette colours. Run at a photo's full resolution they would
see textures far finer than anything they were trained on, and cost grows with the
pixel count; so, as colourization systems do, colour is predicted at a small working
resolution and only its chroma is carried onto the photo's own full-resolution
luminance. YCbCr (JPEG's full-range BT.601) does this with one linear map, the same
operation as JPEG's chroma subsampling, which the eye tolerates well: Y is the grey
input itself (for a grey pixel R = G = B = Y, so zero chroma gives the input back
exactly), Cb/Cr come from the net and are upsampled bilinearly. The result has every
edge and detail of the input, at the cost of colour bleeding across edges by a few
working-resolution pixels. (CIE Lab would do the same, but its gamma curves and cube
roots took ~70 ms per 512x512 picture on 2 CPU cores, most of a request's budget.)

Decoding turns the per-pixel distribution into one colour:
- ``argmax``: the most likely palette colour (the assignment's metric), flat and
  posterised;
- ``annealed mean`` (Zhang et al., "Colorful Image Colorization", 2016): the mean
  chroma under softmax(logits / T). T = 1 is the plain mean (desaturated where the
  net hesitates), T -> 0 tends to argmax; T = 0.38 is that paper's choice.

Confidence per pixel is 1 - H(p) / log K: 1 where the net is sure of one colour, 0
where all 24 are equally likely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colorseg.colour_models import COLOUR_MODEL_NAMES
from colorseg.palette import load_palette
from colorseg.weights_io import COLOUR_STEMS, WeightsError, load_module

DECODINGS = ("annealed mean", "argmax")
DEFAULT_DECODING = "annealed mean"
DEFAULT_TEMPERATURE = 0.38
# Longest side of the picture the nets see. Chosen by looking at photos coloured at
# 32...512 (see colorize_working_size in the report): below 96 colour blobs spill far over
# edges, above 160 the 32x32-trained nets see mostly texture and colour turns patchy.
DEFAULT_WORKING_SIZE = 128
MIN_WORKING_SIZE = 32
MAX_WORKING_SIZE = 512

# Full-range YCbCr (JPEG / BT.601): chroma of an RGB colour, and RGB from Y + chroma.
_RGB_TO_CBCR = torch.tensor([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])  # [2, 3]
_CBCR_TO_RGB = torch.tensor([[0.0, 1.402], [-0.344136, -0.714136], [1.772, 0.0]])  # [3, 2]


@dataclass
class ColourModels:
    """Palette and nets loaded once; a net that failed to load is listed in ``problems``."""

    palette: torch.Tensor  # float32 [K, 3], RGB in [0, 1]
    palette_chroma: torch.Tensor  # float32 [K, 2], the palette's (Cb, Cr), on ``device``
    nets: dict[str, nn.Module]
    descriptions: dict[str, dict[str, Any]]
    problems: dict[str, str] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")


@dataclass
class Colourization:
    rgb: np.ndarray  # uint8 [H, W, 3], the input's resolution
    confidence: np.ndarray  # float32 [H, W] in [0, 1]
    working_size: tuple[int, int]  # (width, height) the net saw


def chroma_of(rgb: torch.Tensor) -> torch.Tensor:
    """RGB [..., 3] in [0, 1] -> (Cb, Cr) [..., 2] in [-0.5, 0.5]."""
    return rgb @ _RGB_TO_CBCR.to(rgb).T


def ycbcr_to_rgb(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Y [H, W] and (Cb, Cr) [2, H, W] -> RGB [H, W, 3] in [0, 1] (out-of-gamut colours clipped)."""
    return (luma[..., None] + torch.einsum("khw,ck->hwc", chroma, _CBCR_TO_RGB.to(chroma))).clamp(0, 1)


def load_colourizers(
    weights_dir: str | Path, device: str | torch.device = "cpu", names: tuple[str, ...] = COLOUR_MODEL_NAMES
) -> ColourModels:
    """Load the palette and every colour net that loads; raises WeightsError only without a palette."""
    device = torch.device(device)
    palette = load_palette(weights_dir)
    nets, descriptions, problems = {}, {}, {}
    for name in names:
        try:
            net, description = load_module(weights_dir, COLOUR_STEMS[name], device)
        except WeightsError as error:
            problems[name] = str(error)
            continue
        trained_colours = description.get("constructor", {}).get("num_colours", len(palette))
        if trained_colours != len(palette):
            problems[name] = (
                f"{name} predicts {trained_colours} colours but the palette has {len(palette)}; "
                "regenerate both with `python train_all.py`"
            )
            continue
        nets[name], descriptions[name] = net, description
    return ColourModels(palette, chroma_of(palette).to(device), nets, descriptions, problems, device)


def greyscale(rgb: np.ndarray) -> np.ndarray:
    """The assignment's input: plain mean of R, G, B in [0, 1]. uint8 [H,W,3] -> float32 [H,W]."""
    return rgb.astype(np.float32).mean(axis=2) / 255.0


def working_shape(height: int, width: int, working_size: int) -> tuple[int, int]:
    """(h, w) with the longest side ``working_size`` (never above the photo's own, rounded up
    to 4) and the aspect ratio kept; both multiples of 4, as the nets need."""
    longest = min(working_size, max(height, width))
    scale = longest / max(height, width)
    return tuple(max(4, 4 * round(side * scale / 4)) for side in (height, width))  # type: ignore[return-value]


def decode_chroma(logits: torch.Tensor, palette_chroma: torch.Tensor, decoding: str, temperature: float) -> torch.Tensor:
    """Logits [B, K, h, w] -> chroma (Cb, Cr) [B, 2, h, w] by argmax or annealed mean."""
    if decoding == "argmax":
        return palette_chroma[logits.argmax(dim=1)].permute(0, 3, 1, 2)
    if decoding == "annealed mean":
        weights = torch.softmax(logits / max(temperature, 1e-3), dim=1)
        return torch.einsum("bkhw,kc->bchw", weights, palette_chroma)
    raise ValueError(f"unknown decoding {decoding!r}; choose one of {', '.join(DECODINGS)}")


def confidence_of(logits: torch.Tensor) -> torch.Tensor:
    """1 - normalised entropy of softmax(logits): [B, K, h, w] -> [B, 1, h, w] in [0, 1]."""
    log_p = torch.log_softmax(logits, dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1, keepdim=True)
    return (1 - entropy / math.log(logits.shape[1])).clamp(0, 1)


@torch.inference_mode()
def colourize(
    models: ColourModels,
    grey: np.ndarray,
    names: list[str] | tuple[str, ...] | None = None,
    working_size: int = DEFAULT_WORKING_SIZE,
    decoding: str = DEFAULT_DECODING,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict[str, Colourization]:
    """Colourize ``grey`` (float32 [H, W] in [0, 1], see :func:`greyscale`) with each named net.

    Returns {name: Colourization} at the input's resolution, in the order of ``names``.
    """
    if decoding not in DECODINGS:
        raise ValueError(f"unknown decoding {decoding!r}; choose one of {', '.join(DECODINGS)}")
    names = list(models.nets) if names is None else list(names)
    unknown = [name for name in names if name not in models.nets]
    if unknown:
        raise KeyError(f"no loaded colour net named {', '.join(unknown)}; loaded: {', '.join(models.nets)}")
    height, width = grey.shape
    small_h, small_w = working_shape(height, width, working_size)
    full = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32)).to(models.device)[None, None]
    # Antialiased resize so that a large photo is averaged, not aliased, into the working size.
    small = F.interpolate(full, size=(small_h, small_w), mode="bilinear", antialias=True, align_corners=False)

    results = {}
    for name in names:
        logits = models.nets[name](small)  # [1, K, h, w]
        chroma = decode_chroma(logits.float(), models.palette_chroma, decoding, temperature)
        maps = torch.cat([chroma, confidence_of(logits.float())], dim=1)  # [1, 3, h, w]
        maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)[0]
        rgb = ycbcr_to_rgb(full[0, 0], maps[:2])  # [H, W, 3]
        results[name] = Colourization(
            rgb=(rgb * 255 + 0.5).to(torch.uint8).cpu().numpy(),
            confidence=maps[2].cpu().numpy(),
            working_size=(small_w, small_h),
        )
    return results
