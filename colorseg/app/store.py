"""Result pictures: each written once, to a new file in gradio's cache folder."""

from __future__ import annotations

import os
import re
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from colorseg.app import settings

if TYPE_CHECKING:
    from colorseg.app.models import Models
    from colorseg.app.uploads import ReadableFiles


# A result's download name: letters, digits, _ and - only (safe on every file system and in a URL).
SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")
MAX_STEM = 64  # characters of the photo's name kept in a download's name
# Names that say nothing of the photo: gradio calls an upload that came without a file name
# tmp<10 hex digits> (gradio.route_utils), and content hashes name files in caches.
_MEANINGLESS_STEM = re.compile(r"tmp[0-9a-f]{10}|(?=.*[0-9])(?=.*[a-f])[0-9a-f]{32,}", re.IGNORECASE)


def _ascii_name(text: str) -> str:
    """``text`` in letters, digits, _ and -: accents dropped (é -> e), anything else one _."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_text).strip("_-")


def download_name(photo: str | os.PathLike | None, what: str) -> str:
    """The name (no extension) a result of ``photo`` downloads under: the photo's own file name and
    ``what`` the picture is, e.g. ``horse_UNet`` for /tmp/gradio/<hash>/horse.jpg.

    gradio keeps an upload's own file name (it stores it as <upload folder>/<content hash>/<name>),
    so the stem is the name the user's file had. It is cut to MAX_STEM characters; a name with
    nothing usable left, or one gradio made up, becomes ``photo``."""
    stem = _ascii_name(Path(os.fspath(photo)).stem) if photo else ""
    if not stem or _MEANINGLESS_STEM.fullmatch(stem):
        stem = "photo"
    stem = stem[:MAX_STEM].rstrip("_-")
    what = _ascii_name(what)
    return f"{stem}_{what}" if what else stem


class PictureStore:
    """Writes each result picture once, to a new file in gradio's cache folder, and returns its path.

    Handing gradio numpy arrays makes it encode them into a content-addressed file that it
    rewrites in place when another request produces the same picture: two users running
    the same example at once then download each other's half-written file (the load test
    failed 5 of 80 requests that way). A fresh file per picture is never rewritten; inside
    gradio's cache folder it is served as it is; :meth:`sweep` deletes it after ``max_age_s``, or
    sooner, oldest first, when the store holds more than ``max_bytes``.
    JPEG (quality 90) keeps photos small and fast to encode (1 ms against 120 ms for PNG at
    512x512); masks and cut-outs are PNG, lossless (cut-outs keep their transparency).
    """

    def __init__(
        self,
        directory: str | Path,
        max_age_s: float = 3600.0,
        sweep_every_s: float = 60.0,
        max_bytes: int | None = None,
        min_age_s: float = 60.0,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Pictures older than max_age_s are deleted, checked at most every sweep_every_s: gradio's
        # delete_cache covers only files it created itself, and a busy Space must not fill its disk.
        # Age alone does not bound the disk (full-resolution results at a few requests a second are
        # 12-30 GB an hour): beyond max_bytes the oldest go first, but never one younger than
        # min_age_s, which a browser may still be downloading.
        self.max_age_s, self.sweep_every_s = max_age_s, sweep_every_s
        self.max_bytes = settings.PICTURE_STORE_BYTES if max_bytes is None else max_bytes
        self.min_age_s = min_age_s
        self._last_sweep = 0.0

    def sweep(self, now: float | None = None) -> int:
        """Delete this store's pictures older than ``max_age_s``, then the oldest (past ``min_age_s``)
        while the rest hold more than ``max_bytes``; returns how many went."""
        now = time.time() if now is None else now
        self._last_sweep = now
        pictures, folders = self._pictures()
        pictures.sort()  # oldest first
        total, removed = sum(size for _, size, _ in pictures), 0
        for mtime, size, path in pictures:
            age = now - mtime
            if age > self.max_age_s or (total > self.max_bytes and age > self.min_age_s):
                try:
                    os.unlink(path)
                except OSError:
                    continue  # another worker removed it first
                total -= size
                removed += 1
        for folder, mtime in folders:
            # Not a folder that a request has just made and is about to write into.
            if now - mtime > self.min_age_s:
                try:
                    os.rmdir(folder)
                except OSError:
                    pass  # not empty (or gone already)
        return removed

    def _pictures(self) -> tuple[list[tuple[float, int, str]], list[tuple[str, float]]]:
        """(mtime, size, path) of every picture, and (path, mtime) of every named picture's folder."""
        pictures, folders = [], []
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return pictures, folders
        for entry in entries:
            try:
                inner = list(os.scandir(entry.path)) if entry.is_dir() else [entry]
                if entry.is_dir():
                    folders.append((entry.path, entry.stat().st_mtime))
                for item in inner:
                    if item.is_file():
                        stat = item.stat()
                        pictures.append((stat.st_mtime, stat.st_size, item.path))
            except OSError:
                continue  # removed meanwhile by another worker
        return pictures, folders

    def save(self, picture: np.ndarray, lossless: bool = False, name: str | None = None) -> str:
        """Write ``picture`` (uint8 [H, W], [H, W, 3] or RGBA [H, W, 4]); ``name`` (letters, digits,
        _ or -) makes the download's file name readable: a fresh folder keeps it unique."""
        if time.time() - self._last_sweep > self.sweep_every_s:
            self.sweep()
        suffix = "png" if lossless or picture.ndim == 3 and picture.shape[2] == 4 else "jpg"
        if name:
            if not SAFE_NAME.fullmatch(name):
                raise ValueError(f"a picture's name is letters, digits, _ and - only: {name!r}")
            folder = self.directory / uuid.uuid4().hex
            folder.mkdir()
            path = folder / f"{name}.{suffix}"
        else:
            path = self.directory / f"{uuid.uuid4().hex}.{suffix}"
        if suffix == "png":
            Image.fromarray(picture).save(path, format="PNG", compress_level=1)
        else:
            Image.fromarray(picture).save(path, format="JPEG", quality=90)
        return str(path)


@dataclass
class Context:
    """What every tab's handlers use: the loaded models, the picture store, the readable files."""

    models: Models
    store: PictureStore
    readable: ReadableFiles
