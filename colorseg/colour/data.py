"""CIFAR-10 horses (label 7) for colourization, from either of two layouts.

1. The official python batches, ``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}``
   (downloaded from the CIFAR-10 home page into ``root`` when missing and allowed).
2. An image-folder dump, ``<root>/{train,test}/horse/*.{jpg,png}``.

Both give uint8 tensors [N, 3, 32, 32]; the official order is kept (file name order for
folders) so that runs are repeatable.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorseg.errors import DataError
from colorseg.paths import data_root, is_image_file

log = logging.getLogger(__name__)

HORSE_LABEL = 7
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCHES_DIR = "cifar-10-batches-py"


@dataclass
class HorseImages:
    train: torch.Tensor  # uint8 [N_train, 3, 32, 32]
    test: torch.Tensor  # uint8 [N_test, 3, 32, 32]
    source: str  # "cifar-10-batches-py" or "image-folder"


def to_grey(rgb: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    """The assignment's input, for training, evaluation and the app alike: the plain mean of
    R, G, B scaled to [0, 1], float32. Channels on ``channel_dim``, kept as size 1:
    uint8 [B, 3, H, W] -> [B, 1, H, W], or [H, W, 3] -> [H, W, 1] with -1."""
    return rgb.float().mean(dim=channel_dim, keepdim=True) / 255.0


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # The official CIFAR-10 batches are pickles by format; they are data from a known
    # source with a checked md5, read with encoding="bytes" as the CIFAR page documents.
    with open(path, "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(batch[b"labels"])


def _load_batches(folder: Path, only: str | None = None) -> HorseImages:
    splits = {"train": [folder / f"data_batch_{i}" for i in range(1, 6)], "test": [folder / "test_batch"]}
    out = {"train": torch.empty(0, 3, 32, 32, dtype=torch.uint8), "test": torch.empty(0, 3, 32, 32, dtype=torch.uint8)}
    for split, paths in splits.items():
        if only is not None and split != only:
            continue
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"{folder} lacks {', '.join(missing)}")
        parts = []
        for path in paths:
            data, labels = _read_batch(path)
            parts.append(data[labels == HORSE_LABEL])
        out[split] = torch.from_numpy(np.concatenate(parts))
    return HorseImages(out["train"], out["test"], BATCHES_DIR)


def _load_folder_split(folder: Path) -> torch.Tensor:
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not files:
        raise DataError(f"no images in {folder}")
    images = []
    for path in files:
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read {path}: {error}") from None
        if rgb.size != (32, 32):
            rgb = rgb.resize((32, 32), Image.BICUBIC)
        images.append(np.asarray(rgb))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _download(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    log.info(f"downloading CIFAR-10 from {CIFAR_URL} into {root}")
    try:
        download_and_extract_archive(CIFAR_URL, download_root=str(root), md5=CIFAR_MD5)
    except Exception as error:  # network errors come in many types (URLError, OSError, HTTPError)
        raise DataError(
            f"could not download CIFAR-10 into {root} ({error}); without a network, point "
            "--colour-data at an existing cifar-10-batches-py folder or an image-folder dump "
            "<root>/{train,test}/horse/*.jpg"
        ) from None


def load_horses(root: str | Path, download: bool = False) -> HorseImages:
    """Load CIFAR-10 horses from ``root`` (either layout), downloading the official set if asked."""
    root = Path(root)
    for candidate in (root / BATCHES_DIR, root):
        if (candidate / "data_batch_1").is_file():
            return _load_batches(candidate)
    if (root / "train" / "horse").is_dir() and (root / "test" / "horse").is_dir():
        return HorseImages(
            _load_folder_split(root / "train" / "horse"), _load_folder_split(root / "test" / "horse"), "image-folder"
        )
    if download:
        _download(root)
        return _load_batches(root / BATCHES_DIR)
    raise DataError(
        f"{root} holds neither {BATCHES_DIR}/ nor train/horse/ + test/horse/ "
        "(pass --colour-download to fetch the official CIFAR-10 archive)"
    )


def load_test_horses(root: str | Path) -> torch.Tensor:
    """Only the test split's horses, uint8 [N, 3, 32, 32], for scoring: the training images are
    neither needed nor read (a folder holding only ``test/horse/`` is enough)."""
    root = Path(root)
    for candidate in (root / BATCHES_DIR, root):
        if (candidate / "test_batch").is_file():
            return _load_batches(candidate, only="test").test
    if (root / "test" / "horse").is_dir():
        return _load_folder_split(root / "test" / "horse")
    raise DataError(
        f"{root} holds neither {BATCHES_DIR}/test_batch nor test/horse/ "
        "(point it at a CIFAR-10 folder; python train_all.py --colour-download fetches one)"
    )


def default_cifar_dir() -> Path:
    """``<data>/cifar10-images`` (an image-folder dump) when present, else ``<data>/cifar10``."""
    images = data_root() / "cifar10-images"
    return images if images.is_dir() else data_root() / "cifar10"
