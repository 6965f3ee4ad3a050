"""The 24-colour palette: seeded k-means on training pixels and nearest-colour labelling.

The course shipped its centroids as ``colour_kmeans24_cat7.npy``; that file is not
available, so colorseg fits its own deterministically and stores it with the weights.
Colours live in [0, 1] RGB, shape [K, 3].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from colorseg.errors import WeightsError
from colorseg.weights import load_tensors, save_tensors

PALETTE_STEM = "palette"  # weights/palette.safetensors + .json: the 24 colours every colour net was trained on

NUM_COLOURS = 24


def _nearest(pixels: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """[N, 3] x [K, 3] -> [N] index of the nearest centroid (squared Euclidean)."""
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is constant per row so it is dropped.
    scores = pixels @ centroids.T * -2 + (centroids * centroids).sum(1)
    return scores.argmin(dim=1)


def fit_palette(
    images: torch.Tensor,
    num_colours: int = NUM_COLOURS,
    seed: int = 0,
    iterations: int = 50,
    max_pixels: int = 1_000_000,
) -> torch.Tensor:
    """k-means (k-means++ init, Lloyd steps) over the pixels of ``images`` uint8 [N,3,H,W].

    A seeded subsample of ``max_pixels`` pixels (1M of CIFAR horses' 5.1M) gives the same
    centroids to within 1/255 at a fifth of the cost. Returns float32 [num_colours, 3] in
    [0, 1], sorted by luminance so the order is stable.
    """
    generator = torch.Generator().manual_seed(seed)
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3)
    if len(pixels) > max_pixels:
        pixels = pixels[torch.randperm(len(pixels), generator=generator)[:max_pixels]]
    pixels = pixels.double() / 255.0
    # k-means++ on a smaller subsample keeps initialisation cheap and deterministic.
    sample = pixels[torch.randperm(len(pixels), generator=generator)[:100_000]]
    centroids = sample[torch.randint(len(sample), (1,), generator=generator)]
    for _ in range(1, num_colours):
        distance = torch.cdist(sample, centroids).min(dim=1).values ** 2
        choice = torch.multinomial(distance / distance.sum(), 1, generator=generator)
        centroids = torch.cat([centroids, sample[choice]])
    for _ in range(iterations):
        assignment = _nearest(pixels, centroids)
        counts = torch.bincount(assignment, minlength=num_colours).double()
        sums = torch.zeros_like(centroids).index_add_(0, assignment, pixels)
        updated = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
        shift = (updated - centroids).abs().max()
        centroids = updated
        if shift < 1e-7:
            break
    luminance = centroids @ torch.tensor([0.299, 0.587, 0.114], dtype=centroids.dtype)
    return centroids[luminance.argsort()].float()


def label_images(rgb: torch.Tensor, palette: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Index of the nearest palette colour for every pixel: uint8 [B,3,H,W] -> int64 [B,H,W].

    Vectorised over pixels and images; chunked over images to bound memory.
    """
    palette = palette.to(rgb.device, torch.float32)
    labels = []
    for start in range(0, len(rgb), chunk):
        block = rgb[start : start + chunk].float() / 255.0  # [b, 3, H, W]
        # Direct squared distances [b, K, H, W]: exact, so ties break as a brute-force loop would.
        distance = ((block[:, None] - palette[None, :, :, None, None]) ** 2).sum(dim=2)
        labels.append(distance.argmin(dim=1))
    return torch.cat(labels)


def palette_to_image(labels: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Colour indices [B,H,W] -> float RGB [B,3,H,W] in [0, 1]."""
    return palette.to(labels.device)[labels].permute(0, 3, 1, 2)


def save_palette(palette: torch.Tensor, directory: str | Path, metadata: dict[str, Any]) -> Path:
    return save_tensors({"palette": palette.float()}, directory, PALETTE_STEM, metadata)


def load_palette_and_digest(directory: str | Path) -> tuple[torch.Tensor, str]:
    """The committed palette and the sha256 of its file, which every net records."""
    tensors, description = load_tensors(directory, PALETTE_STEM)
    palette = tensors.get("palette")
    if palette is None or palette.ndim != 2 or palette.shape[1] != 3:
        raise WeightsError(f"{Path(directory) / PALETTE_STEM}.safetensors holds no [K, 3] palette")
    return palette.float(), description["sha256"]


def palette_record(palette: torch.Tensor, digest: str) -> dict[str, Any]:
    """What a colour net's description records about the palette it was trained with."""
    return {"palette": [[round(v, 6) for v in colour] for colour in palette.tolist()], "palette_sha256": digest}


def same_palette(description: dict[str, Any], palette: torch.Tensor, digest: str | None = None) -> bool:
    """Whether a net described by ``description`` was trained with ``palette`` (its outputs index it).

    Compares the recorded colours (to 1e-5; descriptions round them to 6 decimals), else the
    recorded sha256 of the palette file; a description recording neither is taken on trust.
    """
    recorded = description.get("palette")
    if recorded is not None:
        try:
            values = torch.tensor(recorded, dtype=torch.float32)
        except (TypeError, ValueError):
            return False
        return values.shape == palette.shape and bool(torch.allclose(values, palette.float().cpu(), atol=1e-5))
    if description.get("palette_sha256") and digest:
        return description["palette_sha256"] == digest
    return True


def check_palette(
    name: str,
    description: dict[str, Any],
    palette: torch.Tensor,
    digest: str | None = None,
    hint: str = "python train_all.py --only colour",
) -> None:
    """Raise WeightsError when net ``name`` was trained with another palette than ``palette``."""
    if not same_palette(description, palette, digest):
        raise WeightsError(
            f"{name} was trained with another palette than {PALETTE_STEM}.safetensors (a training run was "
            f"interrupted or trained only some nets); regenerate them together with `{hint}`"
        )
