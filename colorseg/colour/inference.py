"""Colourize a greyscale photo of any size with the assignment's nets (Parts A-C).

The nets were trained on 32x32 CIFAR horses and predict, for every pixel, a
distribution over the 24 palette colours. Run at a photo's full resolution they would
see textures far finer than anything they were trained on, and cost grows with the
pixel count; so, as colourization systems do, colour is predicted at a small working
resolution and only its chroma is carried onto the photo's own full-resolution
luminance, as JPEG's chroma subsampling does (YCbCr, BT.601): a colour is its luma Y plus a
chroma offset rgb - Y, which has zero luma; the net's colours give the offsets at the
working resolution, they are upsampled bilinearly and added onto the grey input itself
(for a grey pixel R = G = B = Y, so zero chroma gives the input back exactly). The result
has every edge and detail of the input, at the cost of colour bleeding across edges by a
few working-resolution pixels. (CIE Lab would do the same, but its gamma curves and cube
roots took ~70 ms per 512x512 picture on 2 CPU cores, most of a request's budget.)

Decoding turns the per-pixel distribution into one colour:
- ``argmax``: the most likely palette colour (the assignment's metric), flat and
  posterised;
- ``annealed mean`` (Zhang et al., "Colorful Image Colorization", 2016): the mean
  chroma offset under softmax(logits / T). T = 1 is the plain mean (desaturated where the
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

from colorseg.colour.data import to_grey
from colorseg.colour.models import COLOUR_MODEL_NAMES, COLOUR_STEMS
from colorseg.colour.palette import check_palette, load_palette_and_digest
from colorseg.colour.scoring import ColourScore, score
from colorseg.errors import WeightsError
from colorseg.weights import load_module

DECODINGS = ("annealed mean", "argmax")
DEFAULT_DECODING = "annealed mean"
DEFAULT_TEMPERATURE = 0.38
# Longest side of the picture the nets see. Chosen by looking at a UNet trained with the
# default recipe on Weizmann horse photos and the example photos at 32, 48, 64, 96, 128, 192
# and 256: from 96 up, objects are far larger than the 32x32 horses the nets learnt from and
# blue or green patches land on horses, cups and faces; at 32-48 colour bleeds further over
# edges; 64 gave the most coherent colours. (Annealed mean at T = 0.38 beat argmax, blotchy,
# and T = 1, washed out, on the same photos.)
DEFAULT_WORKING_SIZE = 64
MIN_WORKING_SIZE = 32
MAX_WORKING_SIZE = 512

# Luma weights of YCbCr (BT.601): the Y that chroma offsets are measured from.
_LUMA = torch.tensor([0.299, 0.587, 0.114])


@dataclass
class ColourModels:
    """Palette and nets loaded once; a net that failed to load is listed in ``problems``."""

    palette: torch.Tensor  # float32 [K, 3], RGB in [0, 1]
    palette_offset: torch.Tensor  # float32 [K, 3], each palette colour's chroma offset, on ``device``
    nets: dict[str, nn.Module]
    descriptions: dict[str, dict[str, Any]]
    problems: dict[str, str] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


@dataclass
class Colourization:
    rgb: np.ndarray  # uint8 [H, W, 3], the input's resolution
    confidence: np.ndarray  # float32 [h, w] in [0, 1], at the working resolution where the net computed it
    working_size: tuple[int, int]  # (width, height) = (w, h) the net saw
    score: ColourScore | None = None  # against the photo's own palette colours, when they were given


def chroma_offset(rgb: torch.Tensor) -> torch.Tensor:
    """RGB [..., 3] in [0, 1] -> its chroma as an RGB offset from its luma, rgb - Y [..., 3].

    The offset has zero luma, so grey + offset keeps the grey's luma (up to clipping), and
    it is linear in rgb, so averaging or upsampling offsets averages chroma.
    """
    return rgb - (rgb @ _LUMA.to(rgb))[..., None]


def load_colourizers(
    weights_dir: str | Path, device: str | torch.device = "cpu", names: tuple[str, ...] = COLOUR_MODEL_NAMES
) -> ColourModels:
    """Load the palette and every colour net that loads; raises WeightsError only without a palette."""
    device = torch.device(device)
    palette, palette_digest = load_palette_and_digest(weights_dir)
    nets, descriptions, problems = {}, {}, {}
    for name in names:
        try:
            net, description = load_module(weights_dir, COLOUR_STEMS[name], device, expect=name)
            check_palette(name, description, palette, palette_digest)
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
        # Channels-last runs these small CPU convs and max-pools in one memory pass per layer:
        # measured 27 -> 12 ms (PoolUpsampleNet) and 18 -> 13 ms (ConvTransposeNet) at 128x128.
        nets[name], descriptions[name] = net.to(memory_format=torch.channels_last), description
    return ColourModels(palette, chroma_offset(palette).to(device), nets, descriptions, problems, device)


def greyscale(rgb: np.ndarray) -> np.ndarray:
    """:func:`colorseg.colour.data.to_grey` for one photo: uint8 [H, W, 3] -> float32 [H, W]."""
    return to_grey(torch.from_numpy(np.require(rgb, requirements=["C", "W"])), channel_dim=-1)[..., 0].numpy()


def working_shape(height: int, width: int, working_size: int) -> tuple[int, int]:
    """(h, w) with the longest side ``working_size`` (or the photo's own when smaller: never
    upsampled) and the aspect ratio kept, each side rounded to a multiple of 4 (at least 4),
    as the nets need."""
    longest = min(working_size, max(height, width))
    scale = longest / max(height, width)
    return tuple(max(4, 4 * round(side * scale / 4)) for side in (height, width))  # type: ignore[return-value]


def decode_offset(
    logits: torch.Tensor, palette_offset: torch.Tensor, decoding: str, temperature: float
) -> torch.Tensor:
    """Logits [B, K, h, w] -> chroma offset [B, 3, h, w] by argmax or annealed mean."""
    if decoding == "argmax":
        return palette_offset[logits.argmax(dim=1)].permute(0, 3, 1, 2)
    if decoding == "annealed mean":
        weights = torch.softmax(logits / max(temperature, 1e-3), dim=1)
        return torch.einsum("bkhw,kc->bchw", weights, palette_offset)
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
    labels: torch.Tensor | None = None,
) -> dict[str, Colourization]:
    """Colourize ``grey`` (float32 [H, W] in [0, 1], see :func:`greyscale`) with each named net.

    Returns {name: Colourization} at the input's resolution, in the order of ``names``. With
    ``labels`` (int64 [h, w] at the working shape: the photo's own colours,
    :func:`colorseg.colour.scoring.palette_target`) each net is also scored against them.
    """
    if decoding not in DECODINGS:
        raise ValueError(f"unknown decoding {decoding!r}; choose one of {', '.join(DECODINGS)}")
    names = list(models.nets) if names is None else list(names)
    unknown = [name for name in names if name not in models.nets]
    if unknown:
        raise KeyError(f"no loaded colour net named {', '.join(unknown)}; loaded: {', '.join(models.nets)}")
    height, width = grey.shape
    small_h, small_w = working_shape(height, width, working_size)
    if labels is not None and tuple(labels.shape) != (small_h, small_w):
        raise ValueError(f"labels {list(labels.shape)} are not at the working shape {[small_h, small_w]}")
    full = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32)).to(models.device)[None, None]
    # Antialiased resize so that a large photo is averaged, not aliased, into the working size.
    small = F.interpolate(full, size=(small_h, small_w), mode="bilinear", antialias=True, align_corners=False)
    small = small.contiguous(memory_format=torch.channels_last)  # the nets' layout, see load_colourizers

    results = {}
    for name in names:
        logits = models.nets[name](small).float()  # [1, K, h, w]
        offset = decode_offset(logits, models.palette_offset, decoding, temperature)  # [1, 3, h, w]
        # Channels-last, so the upsampled [1, 3, H, W] is laid out as the [H, W, 3] picture.
        offset = F.interpolate(
            offset.contiguous(memory_format=torch.channels_last),
            size=(height, width),
            mode="bilinear",
            align_corners=False,
        )
        rgb = offset.add_(full).clamp_(0, 1).mul_(255).add_(0.5).to(torch.uint8)  # [1, 3, H, W]
        results[name] = Colourization(
            rgb=rgb.permute(0, 2, 3, 1)[0].cpu().numpy(),  # [H, W, 3], contiguous
            confidence=confidence_of(logits)[0, 0].cpu().numpy(),
            working_size=(small_w, small_h),
            score=None if labels is None else score(logits, labels),
        )
    return results
