"""Weights on disk: ``<stem>.safetensors`` plus ``<stem>.json`` describing how to rebuild them.

The JSON holds the registry name and constructor arguments of the module, the sha256 of
the tensor file and free-form metadata (recipe, metrics, command, versions, palette...).
Loads verify the sha256 and rebuild through the registry, never through pickle. Saves go
through :class:`colorseg.weights.sets.WeightSet` (several files committed as one set);
:func:`save_module` and :func:`save_tensors` are one-stem sets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from colorseg.errors import REGENERATE_HINT, WeightsError, regenerate_hint
from colorseg.files import sha256_of
from colorseg.registry import KINDS, check_fields, create_model, list_models
from colorseg.weights.sets import WeightSet, locate, recover

# A description is data anyone can edit, read before anything checks it: far larger than any
# colorseg writes (20 kB at most) is refused unread.
MAX_DESCRIPTION_BYTES = 1 << 20
# Values beside the constructor (which its module's declaration in colorseg.registry bounds) that
# loading and inference read from a description. One out of bounds is refused before anything
# uses it: working_size 20000 would run the body on 400-megapixel views, a task or file name with
# a "/" would reach outside the weights folder.
DESCRIPTION_FIELDS = {
    "architecture": re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}"),
    "weights_file": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.safetensors"),
    "working_size": range(16, 1025),  # a segmentation body's inference size
    "image_size": range(16, 1025),  # its training size, the working size of bodies saved without one
    "flip_average": (True, False),
    "tasks": [re.compile(r"[a-z][a-z0-9_]{0,31}")],  # head file names are made from them
}


def save_tensors(
    tensors: dict[str, torch.Tensor], directory: str | Path, stem: str, description: dict[str, Any]
) -> Path:
    """Write ``stem.safetensors`` and ``stem.json`` (``description`` plus file name and sha256) as one set."""
    with WeightSet(directory) as weight_set:
        path = weight_set.save_tensors(tensors, stem, description)
    return path


def save_module(module: nn.Module, directory: str | Path, stem: str, **description: Any) -> Path:
    """Save ``module``'s state dict and the registry name + kwargs that rebuild it, as a
    one-module set; ``description`` takes WeightSet.save_module's keywords (architecture,
    constructor, metadata, dtype: float16 keeps big bodies small)."""
    with WeightSet(directory) as weight_set:
        path = weight_set.save_module(module, stem, **description)
    return path


def read_description(directory: str | Path, stem: str) -> dict[str, Any]:
    directory = Path(directory)
    recover(directory)
    path = locate(directory, f"{stem}.json")
    if not path.is_file():
        raise WeightsError(f"missing weight description {path}; {regenerate_hint()}")
    if path.stat().st_size > MAX_DESCRIPTION_BYTES:
        raise WeightsError(f"{path} is too large to be a colorseg weight description; {regenerate_hint()}")
    try:
        description = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise WeightsError(f"damaged weight description {path} ({error}); {regenerate_hint()}") from None
    if not isinstance(description, dict) or "sha256" not in description:
        raise WeightsError(f"{path} is not a colorseg weight description; {regenerate_hint()}")
    try:
        check_fields({k: description[k] for k in DESCRIPTION_FIELDS if k in description}, DESCRIPTION_FIELDS, path.name)
    except ValueError as error:
        raise WeightsError(f"unusable weight description {path}: {error}; {regenerate_hint()}") from None
    if not isinstance(description.get("constructor", {}), dict):
        raise WeightsError(
            f"unusable weight description {path}: its constructor is not a mapping of field names "
            f"to values; {regenerate_hint()}"
        )
    return description


def load_tensors(directory: str | Path, stem: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``stem.safetensors`` after checking it against the sha256 in ``stem.json``."""
    directory = Path(directory)
    description = read_description(directory, stem)
    hint = description.get("regenerate", REGENERATE_HINT)
    weights_path = locate(directory, description.get("weights_file", f"{stem}.safetensors"))
    if not weights_path.is_file():
        raise WeightsError(f"missing weight file {weights_path}; {regenerate_hint(hint)}")
    digest = sha256_of(weights_path)
    if digest != description.get("sha256"):
        raise WeightsError(
            f"damaged weight file {weights_path}: sha256 {digest[:12]}... does not match "
            f"its description; {regenerate_hint(hint)}"
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"unreadable weight file {weights_path} ({error}); {regenerate_hint(hint)}") from None
    return tensors, description


def load_module(
    directory: str | Path,
    stem: str,
    device: str | torch.device = "cpu",
    expect: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild ``stem`` through the registry, verify its sha256 and load its tensors (eval mode).

    ``expect`` is what the file must hold: a registered architecture (``colour_UNet`` holds UNet:
    two descriptions swapped between files would put each net's weights under the other's name)
    or a kind of module (``seg_body`` any segmentation body); None accepts any registered module."""
    tensors, description = load_tensors(directory, stem)
    hint = description.get("regenerate", REGENERATE_HINT)
    where = Path(directory) / f"{stem}.json"
    architecture = description.get("architecture")
    expected = None if expect is None else list_models(kind=expect) if expect in KINDS else [expect]
    if expected is not None and architecture not in expected:
        raise WeightsError(
            f"{where} describes {architecture!r}, but {stem} holds {' or '.join(expected)}; {regenerate_hint(hint)}"
        )
    try:
        module = create_model(architecture, **description.get("constructor", {}))
    except (KeyError, TypeError, ValueError) as error:
        raise WeightsError(f"{where} names an unbuildable model ({error}); {regenerate_hint(hint)}") from None
    reference = module.state_dict()
    try:
        tensors = {k: v.to(reference[k].dtype) if k in reference else v for k, v in tensors.items()}
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise WeightsError(
            f"{Path(directory) / stem}.safetensors does not fit {description['architecture']} ({error}); "
            f"{regenerate_hint(hint)}"
        ) from None
    return module.to(device).eval(), description
