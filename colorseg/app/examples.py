"""Example photos for the tabs, found when a demo is built, never decoded then (start-up
stays fast: gradio gets paths and decodes an example only when it is clicked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from colorseg.app.settings import REPO
from colorseg.errors import DataError
from colorseg.paths import IMAGE_SUFFIXES, data_root
from colorseg.segmentation.data import find_pairs, is_validation

EXAMPLES_DIR = REPO / "examples"
# The local data folder whose validation images become extra examples (read in place, never
# copied): the training data folder, $COLORSEG_DATA or data/.
DATA_DIRS = [data_root()]
FARM_ANIMALS = ".webp"  # examples/*.webp: the farm-animal photos, the Segment tab's own examples


def images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def sample_photos() -> list[Path]:
    """Photos shipped in the repository, plus matplotlib's public-domain portrait when installed."""
    photos = images_in(EXAMPLES_DIR)
    # Found without importing matplotlib: mpl-data/ sits in its package folder.
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        portrait = Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if portrait.is_file():
            photos.append(portrait)
    return photos


def cifar_validation(limit: int) -> list[Path]:
    """CIFAR-10 test horses (the colour nets' validation set) from a local image-folder dump."""
    for root in DATA_DIRS:
        for folder in (root / "cifar10-images", root / "cifar10", root):
            photos = images_in(folder / "test" / "horse")
            if photos:
                return photos[:limit]
    return []


CIFAR_SIZED = EXAMPLES_DIR / "cifar32"  # the farm photos at 32x32 px (examples/README.md)


def cifar_sized() -> list[Path]:
    """The farm photos at CIFAR-10's 32x32 px, the size the colour nets learnt from (examples/derive.py
    makes them): the Colourize tab shows them apart, so a learner sees what they are."""
    return images_in(CIFAR_SIZED)


def segmentation_validation(limit: int) -> list[tuple[Path, Path]]:
    """Validation photo/mask pairs (segmentation's own split rule) from a local data folder."""
    for root in DATA_DIRS:
        for folder in (root / "weizmann_horse_db", root):
            if not folder.is_dir():
                continue
            try:
                _, pairs = find_pairs(folder)
            except (DataError, OSError):
                continue
            return [(pair.image, pair.mask) for pair in pairs if is_validation(pair.name)][:limit]
    return []


def colour_examples() -> list[Path]:
    return sample_photos() + cifar_validation(limit=4)


REFERENCE_MASKS = EXAMPLES_DIR / "masks"  # U²-Net-p's masks of the farm photos (examples/README.md)


def reference_mask(photo: Path) -> Path | None:
    """The shipped U²-Net-p mask of an example photo, if it has one."""
    mask = REFERENCE_MASKS / f"{photo.stem}.png"
    return mask if photo.parent == EXAMPLES_DIR and mask.is_file() else None


def segment_examples() -> list[list[str | None]]:
    """[photo, mask or None] rows: the farm animals with U²-Net-p's masks first (a mask shows the
    scores and curves), then validation horses with their own masks from local data, then the rest."""
    photos = sample_photos()
    photos.sort(key=lambda p: p.suffix.lower() != FARM_ANIMALS)  # stable: farm animals first
    with_reference = [[str(p), str(reference_mask(p))] for p in photos if reference_mask(p)]
    local = [[str(photo), str(mask)] for photo, mask in segmentation_validation(limit=4)]
    return with_reference + local + [[str(p), None] for p in photos if not reference_mask(p)]
