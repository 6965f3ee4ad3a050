"""Weights on disk: ``<stem>.safetensors`` plus ``<stem>.json`` describing how to rebuild them.

The JSON holds the registry name and constructor arguments of the module, the sha256 of
the tensor file and free-form metadata (recipe, metrics, command, versions, palette...).
Writes are atomic (temporary file in the same folder, then ``os.replace``) so an
interrupted run leaves the previous weights intact; loads verify the sha256 and rebuild
through the registry, never through pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from colorseg.registry import create_model

FORMAT_VERSION = 1
REGENERATE_HINT = "python train_all.py"

# Where the committed weights live and what each file is called (stem -> stem.safetensors + stem.json).
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
PALETTE_STEM = "palette"
COLOUR_STEMS = {name: f"colour_{name}" for name in ("PoolUpsampleNet", "ConvTransposeNet", "UNet")}
SEG_BODY_STEM = "seg_body"
# Segmentation: one body and, for each task, a head per loss of Part D (D.1 and D.2).
SEG_TASKS = ("objects", "flowers", "horses")
SEG_LOSSES = ("cross_entropy", "soft_iou")


def seg_head_stem(task: str, loss: str) -> str:
    return f"seg_head_{task}_{loss}"


class WeightsError(RuntimeError):
    """A weight file is missing, damaged or does not match its description."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def names_digest(names: list[str]) -> str:
    """sha256 of a sorted list of file names: identifies a data set's content without a path."""
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def library_versions() -> dict[str, str]:
    import numpy
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
    }


def command_line() -> str:
    """The command that is running now, to record how weights were made."""
    return " ".join(["python", *sys.argv])


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_tensors(
    tensors: dict[str, torch.Tensor], directory: str | Path, stem: str, description: dict[str, Any]
) -> Path:
    """Write ``stem.safetensors`` then ``stem.json`` (``description`` plus file name and sha256).

    The tensor file is replaced before the JSON; a reader that finds the old JSON with
    the new tensors sees a sha256 mismatch and refuses, never silently mixes them.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / f"{stem}.safetensors"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{weights_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, tmp)
        digest = sha256_of(Path(tmp))
        os.replace(tmp, weights_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    full = {"format_version": FORMAT_VERSION, **description, "weights_file": weights_path.name, "sha256": digest}
    full.setdefault("versions", library_versions())
    atomic_write_json(directory / f"{stem}.json", full)
    return weights_path


def save_module(
    module: nn.Module,
    directory: str | Path,
    stem: str,
    *,
    architecture: str,
    constructor: dict[str, Any],
    metadata: dict[str, Any],
    dtype: torch.dtype | None = None,
) -> Path:
    """Save ``module``'s state dict and the registry name + kwargs that rebuild it.

    ``dtype`` optionally casts floating-point tensors (float16 keeps big bodies small).
    """
    tensors = {}
    for key, value in module.state_dict().items():
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value
    description = {
        "architecture": architecture,
        "constructor": constructor,
        "stored_dtype": str(dtype).replace("torch.", "") if dtype is not None else "as trained",
        **metadata,
    }
    return save_tensors(tensors, directory, stem, description)


def read_description(directory: str | Path, stem: str) -> dict[str, Any]:
    path = Path(directory) / f"{stem}.json"
    if not path.is_file():
        raise WeightsError(f"missing weight description {path}; regenerate it with `{REGENERATE_HINT}`")
    try:
        description = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"damaged weight description {path} ({error}); regenerate it with `{REGENERATE_HINT}`") from None
    if not isinstance(description, dict) or "sha256" not in description:
        raise WeightsError(f"{path} is not a colorseg weight description; regenerate it with `{REGENERATE_HINT}`")
    return description


def load_tensors(directory: str | Path, stem: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``stem.safetensors`` after checking it against the sha256 in ``stem.json``."""
    directory = Path(directory)
    description = read_description(directory, stem)
    hint = description.get("regenerate", REGENERATE_HINT)
    weights_path = directory / description.get("weights_file", f"{stem}.safetensors")
    if not weights_path.is_file():
        raise WeightsError(f"missing weight file {weights_path}; regenerate it with `{hint}`")
    digest = sha256_of(weights_path)
    if digest != description.get("sha256"):
        raise WeightsError(
            f"damaged weight file {weights_path}: sha256 {digest[:12]}... does not match "
            f"its description; regenerate it with `{hint}`"
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"unreadable weight file {weights_path} ({error}); regenerate it with `{hint}`") from None
    return tensors, description


def load_module(
    directory: str | Path,
    stem: str,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild ``stem`` through the registry, verify its sha256 and load its tensors (eval mode)."""
    tensors, description = load_tensors(directory, stem)
    hint = description.get("regenerate", REGENERATE_HINT)
    try:
        module = create_model(description["architecture"], **description.get("constructor", {}))
    except (KeyError, TypeError) as error:
        raise WeightsError(f"{Path(directory) / stem}.json names an unbuildable model ({error}); regenerate it with `{hint}`") from None
    reference = module.state_dict()
    try:
        tensors = {k: v.to(reference[k].dtype) if k in reference else v for k, v in tensors.items()}
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise WeightsError(
            f"{Path(directory) / stem}.safetensors does not fit {description['architecture']} ({error}); "
            f"regenerate it with `{hint}`"
        ) from None
    return module.to(device).eval(), description
