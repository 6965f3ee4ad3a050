"""Random geometry, colour jitter and copy-paste for segmentation training, a whole batch at a time."""

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
    # Copy-paste (Ghiasi et al., 2021): with this probability a sample gets the object of the
    # next sample of its batch pasted onto it, shrunk by U[paste_min_scale, 1] and moved, and
    # the object's pixels become foreground. Off by default: measured at 0.5 on the whole
    # 50-epoch recipe it lowered every validation score (README, "Recipe"): DAVIS marks only
    # *the* main object, and a body taught that anything pasted is foreground takes more.
    copy_paste: float = 0.0
    paste_min_scale: float = 0.35


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
    if config.copy_paste > 0:  # drawn last: without copy-paste the numbers above are unchanged
        params["paste"] = torch.rand(n, generator=generator, device=device) < config.copy_paste
        params["paste_scale"] = _uniform(n, config.paste_min_scale, 1, generator, device)
        params["paste_x"] = _uniform(n, -1, 1, generator, device)
        params["paste_y"] = _uniform(n, -1, 1, generator, device)
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
    planes = torch.stack(
        [masks == 1, masks == IGNORE] if masks.dtype != torch.bool else [masks, torch.zeros_like(masks)], 1
    )
    sampled = F.grid_sample(planes.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    shape = (n, 1, 1, 1)
    grey = photo.mean(dim=1, keepdim=True)
    photo = grey + params["saturation"].view(shape) * (photo - grey)
    mean = photo.mean(dim=(1, 2, 3), keepdim=True)
    photo = mean + params["contrast"].view(shape) * (photo - mean)
    photo = (photo * params["brightness"].view(shape)).clamp(0, 255)
    target = (sampled[:, 0] > 0.5).long().masked_fill(sampled[:, 1] > 0.5, IGNORE)
    if "paste" in params:
        photo, target = paste_objects(photo, target, params)
    return photo, target


def paste_objects(
    photo: torch.Tensor, target: torch.Tensor, params: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy-paste within a batch: every sample whose ``paste`` is set gets the foreground of the
    next sample (cyclically; the donors are the augmented photos before any pasting), scaled by
    ``paste_scale`` and shifted by ``paste_x``/``paste_y`` (in [-1, 1]: 1 flush with the left or
    top edge, -1 with the right or bottom one; the whole donor stays in the picture). Pasted pixels are foreground,
    whatever was beneath (ignored pixels too: what is there is now known)."""
    n = photo.shape[0]
    if n < 2 or not params["paste"].any():
        return photo, target
    donor_photo, donor_object = photo.roll(-1, 0), (target.roll(-1, 0) == 1).float()
    # Output -> input map x_in = x_out / scale + t; |t| <= 1/scale - 1 keeps the donor inside
    # (t = 1/scale - 1 puts it flush with the left edge: paste_x = 1 is left, -1 right).
    zoom = 1 / params["paste_scale"]
    tx, ty = (zoom - 1) * params["paste_x"], (zoom - 1) * params["paste_y"]
    zeros = torch.zeros_like(zoom)
    theta = torch.stack([torch.stack([zoom, zeros, tx], 1), torch.stack([zeros, zoom, ty], 1)], 1)
    grid = F.affine_grid(theta, list(photo.shape), align_corners=False)
    moved_photo = F.grid_sample(donor_photo, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    moved_object = F.grid_sample(
        donor_object[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    pasted = (moved_object[:, 0] > 0.5) & params["paste"].view(n, 1, 1)
    photo = torch.where(pasted[:, None], moved_photo, photo)
    return photo, target.masked_fill(pasted, 1)


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
