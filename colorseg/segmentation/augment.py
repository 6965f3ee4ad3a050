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
    the tensors' device).
    """
    size = size or images.shape[-1]
    n, device = images.shape[0], images.device
    scale = _uniform(n, config.min_scale, config.max_scale, generator, device)
    log_aspect = _uniform(n, -math.log(config.max_aspect), math.log(config.max_aspect), generator, device)
    sx, sy = scale * torch.exp(log_aspect / 2), scale * torch.exp(-log_aspect / 2)
    if config.flip:
        sx = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -sx, sx)
    angle = torch.deg2rad(_uniform(n, -config.max_rotation_deg, config.max_rotation_deg, generator, device))
    # Shift the window anywhere it stays inside the image (or, zoomed out, anywhere it still
    # covers the whole image): |t| <= |1 - s| in normalised coordinates.
    tx = (1 - sx.abs()).abs() * _uniform(n, -1, 1, generator, device)
    ty = (1 - sy.abs()).abs() * _uniform(n, -1, 1, generator, device)
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
    saturation = _uniform(n, 1 - config.saturation, 1 + config.saturation, generator, device).view(shape)
    photo = grey + saturation * (photo - grey)
    contrast = _uniform(n, 1 - config.contrast, 1 + config.contrast, generator, device).view(shape)
    mean = photo.mean(dim=(1, 2, 3), keepdim=True)
    photo = mean + contrast * (photo - mean)
    brightness = _uniform(n, 1 - config.brightness, 1 + config.brightness, generator, device).view(shape)
    photo = (photo * brightness).clamp(0, 255)
    target = (sampled[:, 0] > 0.5).long()
    return photo, target.masked_fill(sampled[:, 1] > 0.5, IGNORE)
