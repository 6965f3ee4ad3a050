"""Photos with binary masks for segmentation, from three folder layouts.

1. Weizmann horses: ``<root>/rgb/<name>.jpg`` + ``<root>/figure_ground/<name>.jpg``.
2. Generic: ``<root>/images/<name>.*`` + ``<root>/masks/<name>.*``.
   For both, masks are greyscale with white = foreground; they are often JPEG (noisy grey
   levels), so a pixel is foreground when its value is > 127 (masks holding only 0 and 1
   are read as 0 = background, 1 = foreground). Masks may be smaller than their photos
   (Weizmann: 800x590 photo, 315x232 mask): the photo is resized to its mask's size.
   Split: an image is in validation when sha256(file stem) taken as a number is
   < VAL_PERCENT % of the hash range, else in training. This is deterministic, needs no
   stored list, and keeps every image's side when images are added to the folder.
3. Oxford 17 Flowers (the assignment's data): ``<root>/jpg/image_XXXX.jpg``,
   ``<root>/trimaps/image_XXXX.png`` and ``<root>/datasplits.mat``, extracted from the
   official archives (downloaded from OXFORD17_URLS when asked and the network allows).
   As in the assignment, a trimap pixel is foreground iff its colour is exactly
   (128, 0, 0). Split: validation = ``val1``; training = ``trn1 + trn2 + trn3`` as in
   the assignment, minus the ``val1`` images that union contains (the assignment's
   training set overlaps its validation set; colorseg keeps them apart).

Training data is held as uint8 tensors of one square size (it fits in memory on any
machine: 280 Weizmann images at 256 px are 55 MB) and augmented a whole batch at a time.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorseg.cifar import IMAGE_SUFFIXES, DataError

VAL_PERCENT = 20
SPLITS = ("all", "train", "val")

OXFORD17_BASE = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/"
OXFORD17_URLS = {
    "images": OXFORD17_BASE + "17flowers.tgz",
    "trimaps": OXFORD17_BASE + "trimaps.tgz",
    "splits": OXFORD17_BASE + "datasplits.mat",
}
OXFORD17_FOREGROUND = (128, 0, 0)
OXFORD17_TRAIN_KEYS = ("trn1", "trn2", "trn3")
OXFORD17_VAL_KEY = "val1"

_HASH_RULE = f"validation iff int(sha256(file stem)[:8], 16) < {VAL_PERCENT}% of 16**8, else training"
# How each layout is split, recorded with the weights.
SPLIT_RULES = {
    "weizmann": _HASH_RULE,
    "folder": _HASH_RULE,
    "oxford17": "validation = datasplits.mat val1; training = trn1 + trn2 + trn3 minus val1",
}

# Layout name -> (photo folder, mask folder).
FOLDER_LAYOUTS = {"weizmann": ("rgb", "figure_ground"), "folder": ("images", "masks"), "oxford17": ("jpg", "trimaps")}


@dataclass
class Pair:
    name: str  # file stem, shared by photo and mask
    image: Path
    mask: Path


@dataclass
class Sample:
    name: str
    image: np.ndarray  # uint8 [h, w, 3] RGB, resized to the mask's size
    mask: np.ndarray  # bool [h, w], True = foreground


@dataclass
class SegmentationTensors:
    images: torch.Tensor  # uint8 [N, 3, S, S]
    masks: torch.Tensor  # bool [N, S, S]
    names: list[str]

    def to(self, device: torch.device | str) -> "SegmentationTensors":
        return SegmentationTensors(self.images.to(device), self.masks.to(device), self.names)


def is_validation(name: str, val_percent: int = VAL_PERCENT) -> bool:
    """The documented split rule for folder layouts (see the module docstring)."""
    value = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16)
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
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def find_pairs(root: str | Path) -> tuple[str, list[Pair]]:
    """The layout of ``root`` and its photo/mask pairs, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"segmentation data folder {root} does not exist")
    layout = detect_layout(root)
    if layout == "oxford17":
        prepare_oxford17(root, download=False)
    photo_dir, mask_dir = (root / folder for folder in FOLDER_LAYOUTS[layout])
    photos, masks = _files_by_stem(photo_dir), _files_by_stem(mask_dir)
    if layout == "oxford17":
        # Only 848 of the 1360 flower photos have a trimap; the others are not segmentation data.
        photos = {name: path for name, path in photos.items() if name in masks}
    missing = sorted(set(photos) - set(masks))
    if missing:
        raise DataError(f"{len(missing)} photos in {photo_dir} have no mask in {mask_dir} (first: {missing[0]})")
    if not photos:
        raise DataError(f"no photos with masks in {photo_dir}")
    return layout, [Pair(name, photos[name], masks[name]) for name in sorted(photos)]


def _oxford17_split_names(root: Path) -> tuple[set[str], set[str]]:
    from scipy.io import loadmat

    try:
        splits = loadmat(root / "datasplits.mat")
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {root / 'datasplits.mat'}: {error}") from None

    def names(key: str) -> set[str]:
        return {f"image_{int(index):04d}" for index in np.asarray(splits[key]).ravel()}

    val = names(OXFORD17_VAL_KEY)
    train = set().union(*(names(key) for key in OXFORD17_TRAIN_KEYS)) - val
    return train, val


def select_split(root: str | Path, split: str = "all") -> list[Pair]:
    """The pairs of one split ("all", "train" or "val") of ``root``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    layout, pairs = find_pairs(root)
    if split == "all":
        return pairs
    if layout == "oxford17":
        train, val = _oxford17_split_names(Path(root))
        wanted = val if split == "val" else train
        chosen = [pair for pair in pairs if pair.name in wanted]
    else:
        chosen = [pair for pair in pairs if is_validation(pair.name) == (split == "val")]
    if not chosen:
        raise DataError(f"the {split} split of {root} is empty ({len(pairs)} images in all)")
    return chosen


def _read_image(path: Path, mode: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {error}") from None


def read_mask(path: Path, layout: str) -> np.ndarray:
    """bool [h, w] foreground mask under the layout's rule (module docstring)."""
    if layout == "oxford17":
        trimap = np.asarray(_read_image(path, "RGB"))
        return np.all(trimap == np.array(OXFORD17_FOREGROUND, dtype=np.uint8), axis=-1)
    grey = np.asarray(_read_image(path, "L"))
    return grey > 0 if grey.max() <= 1 else grey > 127


def read_sample(pair: Pair, layout: str) -> Sample:
    mask = read_mask(pair.mask, layout)
    photo = _read_image(pair.image, "RGB")
    size = (mask.shape[1], mask.shape[0])
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


def samples_to_tensors(samples: list[Sample], size: int) -> SegmentationTensors:
    """Stack samples resized to size x size: uint8 images [N, 3, S, S], bool masks [N, S, S]."""
    images, masks = [], []
    for sample in samples:
        photo = torch.from_numpy(np.array(sample.image)).permute(2, 0, 1)[None]
        images.append(resize_images(photo, (size, size)).round().clamp(0, 255).to(torch.uint8)[0])
        mask = torch.from_numpy(sample.mask)[None, None].float()
        masks.append(F.interpolate(mask, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0, 0] > 0.5)
    return SegmentationTensors(torch.stack(images), torch.stack(masks), [s.name for s in samples])


def load_tensors(root: str | Path, split: str, size: int) -> SegmentationTensors:
    return samples_to_tensors(load_samples(root, split), size)


# --- Oxford 17 Flowers -------------------------------------------------------------------


def layout_archives_present(root: Path) -> bool:
    return all((root / Path(url).name).is_file() for url in OXFORD17_URLS.values())


def prepare_oxford17(root: str | Path, download: bool = False) -> Path:
    """Make ``root`` hold jpg/, trimaps/ and datasplits.mat: extract the archives found in
    ``root``, downloading them from the official addresses first when asked."""
    from torchvision.datasets.utils import download_url, extract_archive

    root = Path(root)
    ready = (root / "jpg").is_dir() and (root / "trimaps").is_dir() and (root / "datasplits.mat").is_file()
    if ready:
        return root
    for url in OXFORD17_URLS.values():
        archive = root / Path(url).name
        if not archive.is_file():
            if not download:
                raise DataError(
                    f"{root} lacks {archive.name}; download the Oxford 17 Flowers files "
                    f"({', '.join(OXFORD17_URLS.values())}) into it, or pass --seg-download"
                )
            print(f"downloading {url} into {root}", file=sys.stderr)
            try:
                download_url(url, str(root))
            except Exception as error:  # network failures come in many types (URLError, OSError, HTTPError)
                raise DataError(
                    f"could not download {url} ({error}); without a network, point --seg-data at a "
                    "local folder of photos and masks (rgb/ + figure_ground/ or images/ + masks/)"
                ) from None
        if archive.suffix == ".tgz":
            extract_archive(str(archive), str(root))
    return root


# --- augmentation, one batch at a time ----------------------------------------------------


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
    """uint8 [B, 3, S, S], bool [B, S, S] -> float [B, 3, s, s] in 0..255, long [B, s, s]
    with s = ``size`` (default S): the random window is sampled straight at that size.

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
    target = F.grid_sample(masks[:, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    shape = (n, 1, 1, 1)
    grey = photo.mean(dim=1, keepdim=True)
    saturation = _uniform(n, 1 - config.saturation, 1 + config.saturation, generator, device).view(shape)
    photo = grey + saturation * (photo - grey)
    contrast = _uniform(n, 1 - config.contrast, 1 + config.contrast, generator, device).view(shape)
    mean = photo.mean(dim=(1, 2, 3), keepdim=True)
    photo = mean + contrast * (photo - mean)
    brightness = _uniform(n, 1 - config.brightness, 1 + config.brightness, generator, device).view(shape)
    photo = (photo * brightness).clamp(0, 255)
    return photo, (target[:, 0] > 0.5).long()
