"""Random geometry and colour jitter for segmentation training, a whole batch at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from colorseg.segmentation.losses import IGNORE


@dataclass(frozen=True)
class Augmentation:
    """Random geometry and colour applied to a whole batch with one grid_sample call."""

    min_scale: float = 0.6  # side of the sampled window relative to the image (<1 zooms in)
    max_scale: float = 1.2  # >1 zooms out; the border is black photo / background mask
    max_aspect: float = 1.33  # window aspect ratio drawn log-uniformly in [1/a, a]
    max_rotation_deg: float = 10.0
    flip: bool = True
    brightness: float = 0.25  # multiply by U[1-b, 1+b]
    contrast: float = 0.25  # blend with the image mean by U[1-c, 1+c]
    saturation: float = 0.25  # blend with the grey image by U[1-s, 1+s]


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def draw_augmentation(n: int, config: Augmentation, generator: torch.Generator, device=None) -> dict[str, torch.Tensor]:
    """Every random number :func:`apply_augmentation` needs for ``n`` samples, each a
    tensor [n] (in the order :func:`augment` has always drawn them).

    Under torchrun every rank draws them for the whole global batch from generators with
    the same seed and keeps its slice (``{k: v[rows]}``): all ranks' generators stay in
    step, a single process gets exactly the same numbers, and one rank's checkpoint of the
    generator is every rank's."""
    device = generator.device if device is None else device
    params = {
        "scale": _uniform(n, config.min_scale, config.max_scale, generator, device),
        "log_aspect": _uniform(n, -math.log(config.max_aspect), math.log(config.max_aspect), generator, device),
    }
    if config.flip:
        params["flip"] = torch.rand(n, generator=generator, device=device) < 0.5
    params["angle"] = torch.deg2rad(_uniform(n, -config.max_rotation_deg, config.max_rotation_deg, generator, device))
    params["shift_x"] = _uniform(n, -1, 1, generator, device)
    params["shift_y"] = _uniform(n, -1, 1, generator, device)
    params["saturation"] = _uniform(n, 1 - config.saturation, 1 + config.saturation, generator, device)
    params["contrast"] = _uniform(n, 1 - config.contrast, 1 + config.contrast, generator, device)
    params["brightness"] = _uniform(n, 1 - config.brightness, 1 + config.brightness, generator, device)
    return params


def apply_augmentation(
    images: torch.Tensor, masks: torch.Tensor, params: dict[str, torch.Tensor], size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply drawn parameters (one entry per sample of ``images``): see :func:`augment`."""
    size = size or images.shape[-1]
    n = images.shape[0]
    scale, log_aspect = params["scale"], params["log_aspect"]
    sx, sy = scale * torch.exp(log_aspect / 2), scale * torch.exp(-log_aspect / 2)
    if "flip" in params:
        sx = torch.where(params["flip"], -sx, sx)
    angle = params["angle"]
    # Shift the window anywhere it stays inside the image (or, zoomed out, anywhere it still
    # covers the whole image): |t| <= |1 - s| in normalised coordinates.
    tx = (1 - sx.abs()).abs() * params["shift_x"]
    ty = (1 - sy.abs()).abs() * params["shift_y"]
    cos, sin = torch.cos(angle), torch.sin(angle)
    # theta maps output coordinates to input coordinates: R(angle) @ diag(sx, sy), then shift.
    theta = torch.stack(
        [torch.stack([cos * sx, -sin * sy, tx], dim=1), torch.stack([sin * sx, cos * sy, ty], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    photo = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Foreground and ignore as two fractional channels, thresholded after resampling.
    planes = torch.stack([masks == 1, masks == IGNORE] if masks.dtype != torch.bool else [masks, torch.zeros_like(masks)], 1)
    sampled = F.grid_sample(planes.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    shape = (n, 1, 1, 1)
    grey = photo.mean(dim=1, keepdim=True)
    photo = grey + params["saturation"].view(shape) * (photo - grey)
    mean = photo.mean(dim=(1, 2, 3), keepdim=True)
    photo = mean + params["contrast"].view(shape) * (photo - mean)
    photo = (photo * params["brightness"].view(shape)).clamp(0, 255)
    target = (sampled[:, 0] > 0.5).long()
    return photo, target.masked_fill(sampled[:, 1] > 0.5, IGNORE)


def augment(
    images: torch.Tensor,
    masks: torch.Tensor,
    config: Augmentation,
    generator: torch.Generator,
    size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [B, 3, S, S], masks [B, S, S] (bool, or uint8 0/1/IGNORE) -> float
    [B, 3, s, s] in 0..255, long [B, s, s] (0/1/IGNORE) with s = ``size`` (default S): the
    random window is sampled straight at that size. Outside the photo (zoomed out) the
    photo is black and the mask background.

    Each sample gets its own affine map (scale, aspect, rotation, shift, flip) and colour
    jitter, but all of it runs as batched tensor operations (``generator`` must live on
    the tensors' device). :func:`draw_augmentation` then :func:`apply_augmentation`.
    """
    return apply_augmentation(images, masks, draw_augmentation(images.shape[0], config, generator, images.device), size)
