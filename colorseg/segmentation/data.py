"""Photos with binary masks for segmentation, from five folder layouts, and mixtures of them.

Masks are uint8 with 0 = background, 1 = foreground and IGNORE (255) = not labelled; the
losses and metrics in colorseg.segmentation.losses skip ignored pixels.

1. Weizmann horses ``weizmann``: ``<root>/rgb/<name>.jpg`` + ``<root>/figure_ground/<name>.jpg``.
2. Generic ``folder``: ``<root>/images/<name>.*`` + ``<root>/masks/<name>.*``.
   For both, masks are greyscale with white = foreground; they are often JPEG (noisy grey
   levels), so a pixel is foreground when its value is > 127 (masks holding only 0 and 1
   are read as 0 = background, 1 = foreground). Masks may be smaller than their photos
   (Weizmann: 800x590 photo, 315x232 mask): the photo is resized to its mask's size; a
   mask whose aspect ratio differs from its photo's by more than 2 % is refused.
3. Oxford 17 Flowers re-released at 256 px with label maps, ``oxford17_labels``:
   ``<root>/images/image_NNNN.jpg`` + ``<root>/labels/image_NNNN.png`` (mode P): label 1 is
   the flower (foreground), 0 the unlabelled boundaries (ignored), anything else background.
   Photos without a label map are not segmentation data and are skipped.
4. DAVIS 2016 ``davis``: ``<root>/JPEGImages/480p/<sequence>/<frame>.jpg`` +
   ``<root>/Annotations/480p/<sequence>/<frame>.png`` (0 / 255). A frame is named
   ``<sequence>/<frame>``; its group, which decides its split, is its sequence, because the
   frames of one sequence are near-duplicates.
5. Official Oxford 17 Flowers ``oxford17`` (the assignment's Part D data): see
   :mod:`colorseg.segmentation.oxford17` for its archives, trimaps and split.

Split of layouts 1-4: an image is in validation when sha256(its group) taken as a number is
below VAL_PERCENT % of the hash range (GROUP_VAL_PERCENT % for DAVIS, whose 16 sequences
would otherwise leave two or three for validation), else in training. The group is the
file stem, or the sequence for DAVIS. This is deterministic, needs no stored list, and
keeps every image's side when images are added to the folder.

Training data is held as uint8 tensors of one square size (the three default data sets,
about 2200 photos, take 330 MB at 224 px) and augmented a whole batch at a time.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorseg.errors import DataError
from colorseg.paths import is_image_file
from colorseg.segmentation.losses import IGNORE
from colorseg.segmentation.oxford17 import (
    OXFORD17_FOREGROUND,
    layout_archives_present,
    oxford17_split_names,
    prepare_oxford17,
)

VAL_PERCENT = 20
GROUP_VAL_PERCENT = 25
SPLITS = ("all", "train", "val")
MAX_ASPECT_MISMATCH = 0.02

FLOWER_LABEL = 1  # oxford17_labels: 1 flower, 0 unlabelled, 2-5 leaves/background/sky/stray
UNLABELLED = 0

_HASH_RULE = "validation iff int(sha256({group})[:8], 16) < {percent}% of 16**8, else training"
# How each layout is split, recorded with the weights.
SPLIT_RULES = {
    "weizmann": _HASH_RULE.format(group="file stem", percent=VAL_PERCENT),
    "folder": _HASH_RULE.format(group="file stem", percent=VAL_PERCENT),
    "oxford17_labels": _HASH_RULE.format(group="file stem", percent=VAL_PERCENT),
    "davis": _HASH_RULE.format(group="sequence name", percent=GROUP_VAL_PERCENT),
    "oxford17": "validation = datasplits.mat val1; training = trn1 + trn2 + trn3 minus val1",
}

# Layout name -> (photo folder, mask folder), in detection order.
FOLDER_LAYOUTS = {
    "weizmann": ("rgb", "figure_ground"),
    "oxford17_labels": ("images", "labels"),
    "folder": ("images", "masks"),
    "davis": ("JPEGImages/480p", "Annotations/480p"),
    "oxford17": ("jpg", "trimaps"),
}


@dataclass
class Pair:
    name: str  # file stem common to photo and mask (DAVIS: "<sequence>/<frame>")
    image: Path
    mask: Path
    group: str  # what the split is decided on: the name, or the DAVIS sequence


@dataclass
class Sample:
    name: str
    image: np.ndarray  # uint8 [h, w, 3] RGB, resized to the mask's size
    mask: np.ndarray  # uint8 [h, w]: 0 background, 1 foreground, IGNORE unlabelled


@dataclass
class SegmentationTensors:
    images: torch.Tensor  # uint8 [N, 3, S, S]
    masks: torch.Tensor  # uint8 [N, S, S], values 0, 1, IGNORE
    names: list[str]
    sources: torch.Tensor | None = None  # long [N]: index into source_names (mixtures)
    source_names: tuple[str, ...] = ()

    def to(self, device: torch.device | str) -> "SegmentationTensors":
        sources = None if self.sources is None else self.sources.to(device)
        return SegmentationTensors(
            self.images.to(device), self.masks.to(device), self.names, sources, self.source_names
        )

    def subset(self, index: torch.Tensor) -> "SegmentationTensors":
        chosen = index.tolist()
        sources = None if self.sources is None else self.sources[index.to(self.sources.device)]
        device_index = index.to(self.images.device)
        return SegmentationTensors(
            self.images[device_index],
            self.masks[device_index],
            [self.names[i] for i in chosen],
            sources,
            self.source_names,
        )


def is_validation(group: str, val_percent: int = VAL_PERCENT) -> bool:
    """The documented split rule for folder layouts (see the module docstring)."""
    value = int(hashlib.sha256(group.encode("utf-8")).hexdigest()[:8], 16)
    return value * 100 < val_percent * 16**8


def detect_layout(root: Path) -> str:
    for layout, (photos, masks) in FOLDER_LAYOUTS.items():
        if (root / photos).is_dir() and (root / masks).is_dir():
            return layout
    if layout_archives_present(root):
        return "oxford17"
    expected = "; ".join(f"{p}/ + {m}/" for p, m in FOLDER_LAYOUTS.values())
    raise DataError(f"{root} holds no known segmentation layout (expected one of: {expected})")


def _files_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if is_image_file(p)}


def _davis_pairs(photo_dir: Path, mask_dir: Path) -> list[Pair]:
    pairs = []
    for sequence in sorted(p for p in photo_dir.iterdir() if p.is_dir()):
        masks = _files_by_stem(mask_dir / sequence.name) if (mask_dir / sequence.name).is_dir() else {}
        for stem, photo in _files_by_stem(sequence).items():
            if stem in masks:
                pairs.append(Pair(f"{sequence.name}/{stem}", photo, masks[stem], sequence.name))
    return pairs


def find_pairs(root: str | Path) -> tuple[str, list[Pair]]:
    """The layout of ``root`` and its photo/mask pairs, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"segmentation data folder {root} does not exist")
    layout = detect_layout(root)
    if layout == "oxford17":
        prepare_oxford17(root, download=False)
    photo_dir, mask_dir = (root / folder for folder in FOLDER_LAYOUTS[layout])
    if layout == "davis":
        pairs = _davis_pairs(photo_dir, mask_dir)
        if not pairs:
            raise DataError(f"no annotated frames in {photo_dir}")
        return layout, pairs
    photos, masks = _files_by_stem(photo_dir), _files_by_stem(mask_dir)
    if layout in ("oxford17", "oxford17_labels"):
        # Only some flower photos have a segmentation; the others are not segmentation data.
        photos = {name: path for name, path in photos.items() if name in masks}
    missing = sorted(set(photos) - set(masks))
    if missing:
        raise DataError(f"{len(missing)} photos in {photo_dir} have no mask in {mask_dir} (first: {missing[0]})")
    if not photos:
        raise DataError(f"no photos with masks in {photo_dir}")
    return layout, [Pair(name, photos[name], masks[name], name) for name in sorted(photos)]


def select_split(root: str | Path, split: str = "all") -> list[Pair]:
    """The pairs of one split ("all", "train" or "val") of ``root``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    layout, pairs = find_pairs(root)
    if split == "all":
        return pairs
    if layout == "oxford17":
        train, val = oxford17_split_names(Path(root))
        wanted = val if split == "val" else train
        chosen = [pair for pair in pairs if pair.name in wanted]
    else:
        percent = GROUP_VAL_PERCENT if layout == "davis" else VAL_PERCENT
        chosen = [pair for pair in pairs if is_validation(pair.group, percent) == (split == "val")]
    if not chosen:
        raise DataError(f"the {split} split of {root} is empty ({len(pairs)} images in all)")
    return chosen


def _read_image(path: Path, mode: str | None) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode) if mode else image.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read {path}: {error}") from None


def read_mask(path: Path, layout: str) -> np.ndarray:
    """uint8 [h, w] mask (0, 1, IGNORE) under the layout's rule (module docstring)."""
    if layout == "oxford17":
        trimap = np.asarray(_read_image(path, "RGB"))
        return np.all(trimap == np.array(OXFORD17_FOREGROUND, dtype=np.uint8), axis=-1).astype(np.uint8)
    if layout == "oxford17_labels":
        labels = np.asarray(_read_image(path, None))
        if labels.ndim != 2:
            raise DataError(f"{path} is not a label map (one value per pixel)")
        mask = (labels == FLOWER_LABEL).astype(np.uint8)
        mask[labels == UNLABELLED] = IGNORE
        return mask
    grey = np.asarray(_read_image(path, "L"))
    return (grey > 0 if grey.max() <= 1 else grey > 127).astype(np.uint8)


def check_aspect(photo_size: tuple[int, int], mask_size: tuple[int, int], what: str) -> None:
    """DataError when a mask cannot belong to a photo: aspect ratios differ by > 2 %."""
    (pw, ph), (mw, mh) = photo_size, mask_size
    if abs(math.log((pw / ph) / (mw / mh))) > math.log1p(MAX_ASPECT_MISMATCH):
        raise DataError(f"{what}: the mask ({mw}x{mh}) does not have its photo's aspect ratio ({pw}x{ph})")


def read_sample(pair: Pair, layout: str) -> Sample:
    mask = read_mask(pair.mask, layout)
    photo = _read_image(pair.image, "RGB")
    size = (mask.shape[1], mask.shape[0])
    check_aspect(photo.size, size, pair.name)
    if photo.size != size:
        photo = photo.resize(size, Image.Resampling.BILINEAR)
    return Sample(pair.name, np.asarray(photo), mask)


def load_samples(root: str | Path, split: str = "all") -> list[Sample]:
    """Photos and masks of one split at the masks' own resolution (for evaluation)."""
    layout, _ = find_pairs(root)
    return [read_sample(pair, layout) for pair in select_split(root, split)]


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8/float [B, 3, H, W] -> float [B, 3, *size] in 0..255 (antialiased bilinear).

    Training data and inference inputs both go through this, so the body sees the same
    resampling at both times.
    """
    return F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [B, H, W] (0, 1, IGNORE) -> uint8 [B, *size]: foreground and ignore are resampled
    as fractions (antialiased bilinear) and a pixel is ignored when more than half of it is."""
    foreground = F.interpolate(
        (masks == 1)[:, None].float(), size=size, mode="bilinear", align_corners=False, antialias=True
    )
    ignored = F.interpolate(
        (masks == IGNORE)[:, None].float(), size=size, mode="bilinear", align_corners=False, antialias=True
    )
    resized = (foreground[:, 0] > 0.5).to(torch.uint8)
    resized[ignored[:, 0] > 0.5] = IGNORE
    return resized


def sample_to_tensors(sample: Sample, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample resized to size x size: uint8 [3, S, S], uint8 [S, S]."""
    photo = torch.from_numpy(np.array(sample.image)).permute(2, 0, 1)[None]
    image = resize_images(photo, (size, size)).round().clamp(0, 255).to(torch.uint8)[0]
    return image, resize_masks(torch.from_numpy(np.array(sample.mask))[None], (size, size))[0]


def samples_to_tensors(samples: list[Sample], size: int) -> SegmentationTensors:
    """Stack samples resized to size x size: uint8 images [N, 3, S, S], uint8 masks [N, S, S]."""
    pairs = [sample_to_tensors(sample, size) for sample in samples]
    return SegmentationTensors(
        torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]), [s.name for s in samples]
    )


def load_split_tensors(root: str | Path, split: str, size: int) -> SegmentationTensors:
    """One split of ``root`` as square tensors, decoding one photo at a time (a DAVIS frame
    at full size is 1.2 MB; only its 224 px copy is kept)."""
    layout, _ = find_pairs(root)
    pairs = select_split(root, split)
    tensors = [sample_to_tensors(read_sample(pair, layout), size) for pair in pairs]
    return SegmentationTensors(
        torch.stack([t[0] for t in tensors]), torch.stack([t[1] for t in tensors]), [p.name for p in pairs]
    )


# --- mixtures of named sources ------------------------------------------------------------
