"""Official Oxford 17 Flowers (the assignment's Part D data): its archives, download and split.

``<root>/jpg/image_XXXX.jpg``, ``<root>/trimaps/image_XXXX.png`` and ``<root>/datasplits.mat``,
extracted from the official archives (downloaded from OXFORD17_URLS when asked and the
network allows). A trimap pixel is foreground iff its colour is exactly OXFORD17_FOREGROUND.
Split: validation = ``val1``; training = ``trn1 + trn2 + trn3`` minus the ``val1`` images.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from colorseg.errors import DataError

log = logging.getLogger(__name__)

OXFORD17_BASE = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/"
OXFORD17_URLS = {
    "images": OXFORD17_BASE + "17flowers.tgz",
    "trimaps": OXFORD17_BASE + "trimaps.tgz",
    "splits": OXFORD17_BASE + "datasplits.mat",
}
OXFORD17_FOREGROUND = (128, 0, 0)
OXFORD17_TRAIN_KEYS = ("trn1", "trn2", "trn3")
OXFORD17_VAL_KEY = "val1"


def oxford17_split_names(root: Path) -> tuple[set[str], set[str]]:
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
            log.info(f"downloading {url} into {root}")
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
