"""Resumable training checkpoints: safetensors + JSON, never pickle.

A checkpoint of ``stage`` lives in ``<directory>/<stage>/``:

* ``state-<epoch>-<sha256 prefix>.safetensors``: every tensor (model state, optimizer
  state such as Adam's moments and ``step``, RNG states as uint8 tensors);
* ``checkpoint.json``: everything else (epoch, optimizer param_groups, scheduler state,
  caller's ``extra``), the tensor file's name and its sha256.

Atomicity: the tensor file gets a new, content-derived name, so writing it never touches
the file the current JSON names; the JSON is replaced last, in one ``os.replace``. A kill
at any instant therefore leaves either the previous checkpoint or the new one, both
valid; orphaned tensor files are deleted by the next save.

RNG: torch's global generator (dropout), CUDA's when present, and every named
``torch.Generator`` the caller passes (shuffling, augmentation). Python's ``random`` and
numpy's global generator are not saved: nothing in training draws from them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from colorseg.errors import ColorsegError

if TYPE_CHECKING:
    from colorseg.training.distributed import DistContext
from colorseg.files import atomic_write_bytes, atomic_write_json, fsync_dir, sha256_of

FORMAT_VERSION = 1
STATE_FILE = "checkpoint.json"
_STAGE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class CheckpointError(ColorsegError):
    """A checkpoint is damaged or does not fit the model/optimizer it is loaded into."""


@dataclass
class CheckpointState:
    epoch: int  # the number of finished epochs: resume at epoch + 1
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the JSON that was loaded


def checkpoint_dir(directory: str | Path, stage: str) -> Path:
    if not _STAGE_NAME.fullmatch(stage) or stage in (".", ".."):
        raise ValueError(f"checkpoint stage {stage!r} must be a plain name (letters, digits, _ . -)")
    return Path(directory) / stage


# --- nested state <-> JSON + flat tensors ---------------------------------------------------


def _split(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able copy of ``value`` with every tensor moved into ``tensors[path]``.

    Tuples and dicts with non-string keys (the optimizer's int parameter ids) are tagged,
    because load_state_dict silently ignores state under "0" instead of 0."""
    if isinstance(value, torch.Tensor):
        if path in tensors:
            raise ValueError(f"two tensors would be stored as {path!r}")
        # A copy: safetensors refuses tensors sharing storage, and the caller goes on training.
        tensors[path] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": path}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: _split(item, f"{path}.{key}", tensors) for key, item in value.items()}
        return {"__items__": [[key, _split(item, f"{path}.{key}", tensors)] for key, item in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_split(item, f"{path}.{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_split(item, f"{path}.{i}", tensors) for i, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {path!r} in a checkpoint (JSON or tensors only)")


def _join(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`_split`."""
    if isinstance(value, list):
        return [_join(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__tuple__" in value:
        return tuple(_join(item, tensors) for item in value["__tuple__"])
    if "__items__" in value:
        return {key: _join(item, tensors) for key, item in value["__items__"]}
    return {key: _join(item, tensors) for key, item in value.items()}


def _rng_states(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "generators": {n: g.get_state() for n, g in generators.items()},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    if set(states["generators"]) != set(generators):
        raise ValueError(f"checkpoint has generators {sorted(states['generators'])}, the caller {sorted(generators)}")
    torch.set_rng_state(states["torch"])
    for name, generator in generators.items():
        generator.set_state(states["generators"][name])
    cuda = states.get("cuda")
    if cuda is not None:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all(cuda)
        else:  # resuming on another machine: training goes on, but not bit for bit
            warnings.warn("checkpoint holds CUDA RNG states for another set of GPUs; not restored", stacklevel=3)


def save_checkpoint(
    directory: str | Path,
    stage: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    epoch: int,
    generators: dict[str, torch.Generator] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the state after ``epoch`` finished epochs; returns the JSON's path.

    Call it after the epoch (after its last scheduler step and any validation that draws
    random numbers), with the plain module, not a DistributedDataParallel wrapper, and on
    one rank only."""
    folder = checkpoint_dir(directory, stage)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    body = {
        "format_version": FORMAT_VERSION,
        "stage": stage,
        "epoch": int(epoch),
        "model": _split(dict(model.state_dict()), "model", tensors),
        "optim": _split(optimizer.state_dict(), "optim", tensors),
        "scheduler": None if scheduler is None else _split(scheduler.state_dict(), "scheduler", tensors),
        "rng": _split(_rng_states(generators or {}), "rng", tensors),
        "extra": _split(extra or {}, "extra", tensors),
    }
    data = save(tensors)
    digest = hashlib.sha256(data).hexdigest()
    tensor_file = f"state-{int(epoch):04d}-{digest[:16]}.safetensors"
    atomic_write_bytes(folder / tensor_file, data)
    body.update(tensors_file=tensor_file, sha256=digest)
    atomic_write_json(folder / STATE_FILE, body)  # the commit point
    fsync_dir(folder)
    for stale in folder.glob("state-*.safetensors"):
        if stale.name != tensor_file:
            stale.unlink(missing_ok=True)
    return folder / STATE_FILE


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON and its verified tensors; ValueError/OSError on anything wrong."""
    body = json.loads((folder / STATE_FILE).read_text())
    if not isinstance(body, dict) or body.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"not a format {FORMAT_VERSION} checkpoint")
    tensor_path = folder / body["tensors_file"]
    if tensor_path.parent != folder:
        raise ValueError("tensor file outside the checkpoint folder")
    if sha256_of(tensor_path) != body["sha256"]:
        raise ValueError(f"{tensor_path.name} does not match the sha256 in {STATE_FILE}")
    try:
        return body, load_file(str(tensor_path))
    except SafetensorError as error:
        raise ValueError(str(error)) from None


def load_checkpoint(
    directory: str | Path,
    stage: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    generators: dict[str, torch.Generator] | None = None,
) -> CheckpointState | None:
    """Restore model, optimizer, scheduler and RNG states in place; None if there is no
    checkpoint. Raises CheckpointError naming the file when it is damaged or does not fit."""
    folder = checkpoint_dir(directory, stage)
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    try:
        body, tensors = _read(folder)
        if body.get("stage") != stage:
            raise ValueError(f"it belongs to stage {body.get('stage')!r}")
        if (body["scheduler"] is None) != (scheduler is None):
            raise ValueError("saved with" + ("out" if body["scheduler"] is None else "") + " a scheduler")
        model.load_state_dict(_join(body["model"], tensors), strict=True)
        optimizer.load_state_dict(_join(body["optim"], tensors))
        if scheduler is not None:
            scheduler.load_state_dict(_join(body["scheduler"], tensors))
        _restore_rng(_join(body["rng"], tensors), generators or {})
        return CheckpointState(epoch=int(body["epoch"]), extra=_join(body["extra"], tensors), path=path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(
            f"unusable training checkpoint {path} ({type(error).__name__}: {error}); "
            f"delete {folder} or run without --resume to start this stage afresh"
        ) from None


def remove_checkpoint(directory: str | Path, stage: str) -> None:
    """Delete the stage's checkpoint (once its final weights are written). The JSON goes
    first, so an interrupted removal leaves no checkpoint rather than a broken one."""
    folder = checkpoint_dir(directory, stage)
    (folder / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


# --- what a training stage does with its checkpoint ------------------------------------------

log = logging.getLogger(__name__)


class ResumeError(ColorsegError):
    """A stage's checkpoint was made by another recipe, seed or data: it cannot be resumed."""


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often a training stage saves a resumable checkpoint (None: never)."""

    directory: Path | None = None  # runs/checkpoints/ by default in train_all.py; never weights/
    resume: bool = False  # continue from a stage's checkpoint when there is one
    every: int = 1  # epochs between checkpoints


def resume_from(checkpointing: Checkpointing, stage: str, recipe: dict, **state) -> tuple[list[dict], int]:
    """(history so far, first epoch to run): from the stage's checkpoint when resuming, else
    ([], 1) after deleting any stale checkpoint of an earlier run. ``state``: model, optimizer,
    scheduler, generators (restored in place; every rank loads, before wrapping in DDP)."""
    if checkpointing.directory is None:
        return [], 1
    if not checkpointing.resume:
        remove_checkpoint(checkpointing.directory, stage)
        return [], 1
    loaded = load_checkpoint(checkpointing.directory, stage, **state)
    if loaded is None:
        return [], 1
    if loaded.extra.get("recipe") != recipe:
        raise ResumeError(f"{loaded.path} was made with another recipe; delete it or drop --resume")
    log.info("%s: resuming after epoch %d from its checkpoint", stage, loaded.epoch)
    return loaded.extra["history"], loaded.epoch + 1


def save_progress(
    checkpointing: Checkpointing,
    stage: str,
    ctx: DistContext,
    epoch: int,
    epochs: int,
    extra: dict,
    keep_last: bool = False,
    **state,
) -> None:
    """After an epoch (its last scheduler step and draws done): rank 0 saves the checkpoint
    every ``every`` epochs, except after the last (the final weights follow), unless
    ``keep_last``: a stage whose weights are written only with later stages' (the segmentation
    body and heads, one weight set) keeps its finished state, so that resuming a later stage
    does not train it again."""
    if checkpointing.directory is None or not ctx.is_main:
        return
    if epoch > epochs or (epoch == epochs and not keep_last) or (epoch < epochs and epoch % checkpointing.every):
        return
    save_checkpoint(checkpointing.directory, stage, epoch=epoch, extra={**extra, "world_size": ctx.world_size}, **state)


def finish_stage(checkpointing: Checkpointing, stage: str) -> None:
    """Rank 0, once the stage's final weights are written: its checkpoint is no longer needed."""
    if checkpointing.directory is not None:
        remove_checkpoint(checkpointing.directory, stage)
