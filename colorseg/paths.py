"""Where things live, relative to the checkout: the one place that knows the repository's layout.

Nothing here points outside the repository. Data defaults to ``<repo>/data`` (filled by the
downloads where a network allows); ``COLORSEG_DATA`` or a command-line flag overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS_DIR = REPO_ROOT / "weights"
DEFAULT_REPORTS_DIR = REPO_ROOT / "reports"
EXAMPLES_DIR = REPO_ROOT / "examples"  # free photos: the app's examples and the training replays' pictures
TRAIN_SCRIPT = REPO_ROOT / "train_all.py"
DATA_ENV = "COLORSEG_DATA"

# File suffixes read as pictures by every data loader and folder walk.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def data_root() -> Path:
    """The data folder: ``$COLORSEG_DATA`` when set, else ``data/`` in the checkout."""
    return Path(os.environ.get(DATA_ENV) or REPO_ROOT / "data")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
