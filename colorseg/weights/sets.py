"""Weights that belong together, committed as one set: a kill at any instant leaves every
file of the set either at its previous version or at its new one::

    with WeightSet(weights_dir) as ws:
        ws.save_tensors({"palette": palette}, "palette", {...})
        ws.save_module(body, "seg_body", architecture=..., constructor=..., metadata=...)
        ws.save_module(head, "seg_head_soft_iou", ...)
    # here every file is in place; ws.digest("seg_body") is the sha256 written in its JSON

How (the weights folder is its own journal, no other state):

1. every file is written into a staging folder ``<weights_dir>/.weightset-XXXX/`` on which
   the writing process holds an exclusive ``flock`` while it lives;
2. on leaving the ``with`` block without an exception, a ``COMMITTED`` marker listing the
   files is renamed into the staging folder: that rename is the commit point;
3. the staged files are renamed into place one by one, then the staging folder is removed.

An exception (Ctrl-C included) inside the block discards the staging folder. Before every
load and save, :func:`recover` finishes the work of a killed writer: a committed staging
folder is rolled forward (its remaining files renamed into place), an uncommitted one that
no live process holds is deleted, and stray ``.*.tmp`` files older than a minute are
removed. On a read-only folder (a Space) recovery cannot write; loads then read the files of
a committed-but-unfinished set from its staging folder, so they still see one consistent
version, and anything else inconsistent is refused (WeightsError). colorseg.weights.save_module and
save_tensors are one-stem sets. Files get an ordinary mode (0644 usually), not mkstemp's 0600.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: staging folders are then judged by age alone
    fcntl = None  # type: ignore[assignment]

import torch
from safetensors.torch import save_file
from torch import nn

from colorseg.files import file_mode, fsync_dir, sha256_of
from colorseg.training.provenance import library_versions

FORMAT_VERSION = 1
STAGING_PREFIX = ".weightset-"
COMMIT_MARKER = "COMMITTED"
LOCK_FILE = ".lock"
STRAY_TMP_AGE_S = 60.0  # a .tmp file this old in a weights folder belongs to no running write

# ----------------------------------------------------------------------------- sets of weights


def _try_lock(path: Path, create: bool = True) -> Any:
    """An open handle holding an exclusive flock on ``path``, or None when another process holds it."""
    if fcntl is None:
        return None
    try:
        handle = open(path, "a+b" if create else "rb")
    except OSError:
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _read_marker(staging: Path) -> list[str] | None:
    """The file names a committed staging folder holds, or None when it was never committed."""
    try:
        marker = json.loads((staging / COMMIT_MARKER).read_text())
        files = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, list) or not all(
        isinstance(f, str) and "/" not in f and f not in ("", ".", "..") for f in files
    ):
        return None
    return files


def _roll_forward(staging: Path, files: list[str]) -> None:
    for name in files:
        source = staging / name
        if source.exists():
            os.replace(source, staging.parent / name)
    fsync_dir(staging.parent)
    shutil.rmtree(staging)


def _abandoned(staging: Path) -> bool:
    """True when no live process is writing ``staging`` (its flock is free, or without flock, it is old)."""
    if fcntl is None:
        try:
            return time.time() - staging.stat().st_mtime > 3600
        except OSError:
            return False
    if not (staging / LOCK_FILE).exists():
        return _old(staging)  # a writer creates its lock right after the folder
    handle = _try_lock(staging / LOCK_FILE, create=False)
    if handle is None:
        return False
    handle.close()  # closing releases the lock; the folder is deleted right after
    return True


def _old(path: Path, age: float = STRAY_TMP_AGE_S) -> bool:
    try:
        return time.time() - path.stat().st_mtime > age
    except OSError:
        return False


def recover(directory: str | Path) -> None:
    """Finish or undo what a killed writer left in ``directory`` (see the module docstring).

    Never raises for lack of permission: on a read-only folder nothing is changed, and loads
    read committed staged files through :func:`_locate` instead.
    """
    directory = Path(directory)
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir():
                files = _read_marker(entry)
                if files is not None:
                    _roll_forward(entry, files)
                elif _abandoned(entry):
                    shutil.rmtree(entry)
            elif entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file() and _old(entry):
                entry.unlink()
        except OSError:
            continue  # read-only folder, or another process got there first


def locate(directory: Path, name: str) -> Path:
    """``directory / name``, or its copy in a committed staging folder that could not be rolled forward."""
    try:
        stagings = [e for e in directory.iterdir() if e.name.startswith(STAGING_PREFIX)]
    except OSError:
        stagings = []
    for staging in sorted(stagings):
        files = _read_marker(staging)
        if files is not None and name in files and (staging / name).is_file():
            return staging / name
    return directory / name


def _staged_tensors(
    tensors: dict[str, torch.Tensor], folder: Path, stem: str, description: dict[str, Any]
) -> tuple[list[str], str]:
    """Write ``stem.safetensors`` and ``stem.json`` into ``folder``; returns (file names, sha256)."""
    weights_name = f"{stem}.safetensors"
    path = folder / weights_name
    save_file({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, str(path))
    os.chmod(path, file_mode())
    digest = sha256_of(path)
    full = {"format_version": FORMAT_VERSION, **description, "weights_file": weights_name, "sha256": digest}
    full.setdefault("versions", library_versions())
    with open(folder / f"{stem}.json", "wb") as handle:
        os.fchmod(handle.fileno(), file_mode())
        handle.write((json.dumps(full, indent=2, sort_keys=False) + "\n").encode())
        handle.flush()
        os.fsync(handle.fileno())
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    return [weights_name, f"{stem}.json"], digest


def module_tensors(module: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    cast = dtype is not None
    return {
        key: value.to(dtype) if cast and value.is_floating_point() else value
        for key, value in module.state_dict().items()
    }


def module_description(
    architecture: str, constructor: dict[str, Any], metadata: dict[str, Any], dtype: torch.dtype | None = None
) -> dict[str, Any]:
    return {
        "architecture": architecture,
        "constructor": constructor,
        "stored_dtype": str(dtype).replace("torch.", "") if dtype is not None else "as trained",
        **metadata,
    }


class WeightSet:
    """Weights written together: all of them land, or none (see the module docstring).

    ``with WeightSet(directory) as ws: ws.save_module(...); ws.save_tensors(...)``. Nothing
    is visible in ``directory`` until the block ends without an exception; then all files are
    committed at once. ``ws.digest(stem)`` gives the sha256 recorded for a staged stem (to
    cite one file from another, as heads cite their body) and ``ws.path(stem)`` its final path.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._staging: Path | None = None
        self._lock: Any = None
        self._files: list[str] = []
        self._digests: dict[str, str] = {}

    def __enter__(self) -> "WeightSet":
        self.directory.mkdir(parents=True, exist_ok=True)
        recover(self.directory)
        self._staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.directory))
        self._lock = _try_lock(self._staging / LOCK_FILE)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None and self._files:
                self.commit()
        finally:
            self._close()

    def _close(self) -> None:
        if self._staging is not None and self._staging.exists() and _read_marker(self._staging) is None:
            shutil.rmtree(self._staging, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        self._staging = None

    def save_tensors(self, tensors: dict[str, torch.Tensor], stem: str, description: dict[str, Any]) -> Path:
        """Stage ``stem.safetensors`` + ``stem.json``; returns the path the tensors will have once committed."""
        if self._staging is None:
            raise RuntimeError("WeightSet.save_tensors outside its `with` block")
        if stem in self._digests:
            raise ValueError(f"{stem} is already in this weight set")
        files, digest = _staged_tensors(tensors, self._staging, stem, description)
        self._files += files
        self._digests[stem] = digest
        return self.path(stem)

    def save_module(
        self,
        module: nn.Module,
        stem: str,
        *,
        architecture: str,
        constructor: dict[str, Any],
        metadata: dict[str, Any],
        dtype: torch.dtype | None = None,
    ) -> Path:
        """Stage ``module``'s state dict and the registry name + kwargs that rebuild it (see :func:`save_module`)."""
        return self.save_tensors(
            module_tensors(module, dtype), stem, module_description(architecture, constructor, metadata, dtype)
        )

    def digest(self, stem: str) -> str:
        return self._digests[stem]

    def path(self, stem: str) -> Path:
        return self.directory / f"{stem}.safetensors"

    def commit(self) -> None:
        """Write the commit marker (the commit point), then rename every staged file into place."""
        assert self._staging is not None
        staging = self._staging
        marker_tmp = staging / f".{COMMIT_MARKER}.tmp"
        with open(marker_tmp, "wb") as handle:
            handle.write(json.dumps({"files": self._files}).encode())
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(staging)
        os.replace(marker_tmp, staging / COMMIT_MARKER)
        fsync_dir(staging)
        _roll_forward(staging, self._files)


class NoWrites:
    """A WeightSet stand-in for the ranks that must not write (all but rank 0 under torchrun)."""

    def __enter__(self) -> "NoWrites":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        return None

    def save_tensors(self, tensors, stem: str, description) -> None:
        return None

    def save_module(self, module, stem: str, **kwargs) -> None:
        return None

    def digest(self, stem: str) -> str:
        return ""
