"""Training replay: a few fixed images' predictions after every epoch, for watching a net learn.

On disk, per replay ``stem`` in a report folder:
- ``<stem>_<key>.png`` for every key (e.g. "prediction", "mask_soft_iou"): one strip, a row
  per recorded epoch and a column per image, tiles packed without gaps so that a row is
  found by arithmetic; masks are stored as greyscale 0/255, images as RGB. PNG keeps the
  thumbnails exact and small (a 60-epoch strip of 8 CIFAR images is 480x256 px);
- ``<stem>.json``: kind, image names, tile size, epochs, keys and the losses per epoch.
No pickle and no numpy object arrays: anything can read it, and reading runs no code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from colorseg.files import atomic_write_bytes, save_png

KINDS = ("colour", "segmentation")
FORMAT_VERSION = 1
_KEY = re.compile(r"^[A-Za-z0-9_-]+$")  # keys become file names


class ReplayError(ValueError):
    """A replay on disk is missing, damaged or inconsistent with its index."""


def _as_tiles(images: np.ndarray, count: int) -> np.ndarray:
    """uint8 [N, h, w, 3] stays; bool masks [N, h, w] become uint8 0/255 [N, h, w, 1]."""
    images = np.asarray(images)
    if images.dtype == np.bool_ and images.ndim == 3:
        images = (images * np.uint8(255))[..., None]
    elif images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(
            f"expected uint8 images [N, h, w, 3] or bool masks [N, h, w], got {images.dtype} {images.shape}"
        )
    if len(images) != count:
        raise ValueError(f"expected {count} images (one per name), got {len(images)}")
    return np.array(images)  # a copy: callers reuse their buffers between epochs


class ReplayRecorder:
    """Collects one row of thumbnails per epoch and key in memory; :meth:`save` writes them."""

    def __init__(self, kind: str, names: list[str]):
        if kind not in KINDS:
            raise ValueError(f"unknown replay kind {kind!r}; choose one of {', '.join(KINDS)}")
        if not names:
            raise ValueError("a replay needs at least one image name")
        self.kind, self.names = kind, list(names)
        self.tile: tuple[int, int] | None = None  # (h, w), the same for every key
        self.frames: dict[str, dict[int, np.ndarray]] = {}
        self.losses: dict[int, dict[str, dict[str, float]]] = {}

    def record(self, epoch: int, key: str, images: np.ndarray) -> None:
        """Store the images of ``key`` after ``epoch`` (recording an epoch again replaces it)."""
        if not _KEY.match(key):
            raise ValueError(f"replay key {key!r} must be letters, digits, _ or - (it names a file)")
        tiles = _as_tiles(images, len(self.names))
        if self.tile is None:
            self.tile = tiles.shape[1:3]
        if tiles.shape[1:3] != self.tile:
            raise ValueError(f"tiles are {self.tile[0]}x{self.tile[1]}, got {tiles.shape[1]}x{tiles.shape[2]}")
        earlier = next(iter(self.frames.get(key, {}).values()), None)
        if earlier is not None and earlier.shape[3] != tiles.shape[3]:
            raise ValueError(f"key {key!r} holds {'masks' if earlier.shape[3] == 1 else 'RGB images'}; cannot mix")
        self.frames.setdefault(key, {})[int(epoch)] = tiles

    def record_losses(self, epoch: int, key: str, losses: dict[str, float]) -> None:
        """Losses or metrics shown beside a frame, e.g. record_losses(3, "train", {"loss": 1.9})."""
        self.losses.setdefault(int(epoch), {})[key] = {name: float(value) for name, value in losses.items()}

    def save(self, report_dir: str | Path, stem: str) -> Path:
        """Write every key's strip, then the index (so the index only names complete files)."""
        report_dir = Path(report_dir)
        keys = {}
        for key, by_epoch in self.frames.items():
            epochs = sorted(by_epoch)
            rows = [np.concatenate(list(by_epoch[epoch]), axis=1) for epoch in epochs]  # [h, N*w, C] each
            strip = np.concatenate(rows, axis=0)
            path = save_png(strip[..., 0] if strip.shape[2] == 1 else strip, report_dir / f"{stem}_{key}.png")
            keys[key] = {"file": path.name, "epochs": epochs, "channels": int(strip.shape[2])}
        epochs = sorted({e for by_epoch in self.frames.values() for e in by_epoch} | set(self.losses))
        index = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "names": self.names,
            "tile": list(self.tile or (0, 0)),
            "epochs": epochs,
            "keys": keys,
            "losses": {str(epoch): self.losses[epoch] for epoch in sorted(self.losses)},
        }
        path = report_dir / f"{stem}.json"
        atomic_write_bytes(path, (json.dumps(index, indent=1) + "\n").encode())
        return path


@dataclass(frozen=True)
class Replay:
    kind: str
    names: list[str]
    tile: tuple[int, int]  # (h, w)
    epochs: list[int]  # every epoch with a frame or losses
    key_epochs: dict[str, list[int]]  # the epochs recorded for each key, i.e. its strip's rows
    losses: dict[int, dict[str, dict[str, float]]]
    strips: dict[str, np.ndarray]  # uint8 [rows * h, N * w] (masks) or [rows * h, N * w, 3]

    @property
    def keys(self) -> list[str]:
        return list(self.key_epochs)

    def frame(self, key: str, epoch: int) -> np.ndarray:
        """All images of ``key`` after ``epoch`` side by side, uint8 [h, N * w, 3]."""
        if key not in self.key_epochs:
            raise KeyError(f"no replay key {key!r}; recorded: {', '.join(self.key_epochs)}")
        if epoch not in self.key_epochs[key]:
            raise KeyError(f"epoch {epoch} of {key!r} was not recorded; recorded: {self.key_epochs[key]}")
        height = self.tile[0]
        row = self.key_epochs[key].index(epoch)
        picture = self.strips[key][row * height : (row + 1) * height]
        return np.repeat(picture[..., None], 3, axis=2) if picture.ndim == 2 else picture.copy()


def load_replay(report_dir: str | Path, stem: str) -> Replay:
    """Read a replay written by :meth:`ReplayRecorder.save`; ReplayError when it is broken."""
    index_path = Path(report_dir) / f"{stem}.json"
    try:
        index = json.loads(index_path.read_text())
        if index.get("format_version") != FORMAT_VERSION:
            raise ReplayError(f"{index_path} has format {index.get('format_version')!r}, not {FORMAT_VERSION}")
        tile, names = tuple(index["tile"]), list(index["names"])
        strips, key_epochs = {}, {}
        for key, entry in index["keys"].items():
            with Image.open(Path(report_dir) / Path(entry["file"]).name) as image:  # no paths out of the folder
                strips[key] = np.asarray(image.convert("L" if entry["channels"] == 1 else "RGB"))
            key_epochs[key] = [int(epoch) for epoch in entry["epochs"]]
            expected = (len(key_epochs[key]) * tile[0], len(names) * tile[1])
            if strips[key].shape[:2] != expected:
                raise ReplayError(f"{entry['file']} is {strips[key].shape[:2]}, its index says {expected}")
        losses = {int(epoch): by_key for epoch, by_key in index["losses"].items()}
    except (OSError, KeyError, TypeError, ValueError) as error:
        if isinstance(error, ReplayError):
            raise
        raise ReplayError(f"cannot read the replay {stem} in {report_dir}: {error}") from None
    return Replay(index["kind"], names, tile, [int(e) for e in index["epochs"]], key_epochs, losses, strips)
