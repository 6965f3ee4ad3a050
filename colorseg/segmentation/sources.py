"""Which data a segmentation run trains on: named sources and their mixture (balanced
epochs), the tasks built from them, and every source's tensors (training mixture,
validation splits, a few photos to pick the inference size)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from colorseg.errors import DataError
from colorseg.paths import data_root
from colorseg.segmentation import data as seg_data
from colorseg.segmentation import oxford17
from colorseg.segmentation.data import SegmentationTensors
from colorseg.training.provenance import names_digest

# Default sources, inside the data folder (``COLORSEG_DATA`` or ``data/`` in the checkout).
DEFAULT_SOURCES = {"davis": "davis2016", "flowers": "oxford17flowers", "horses": "weizmann_horse_db"}
TASK_SOURCES = ("flowers", "horses")  # sources that are also a task of their own
ALL_SOURCES_TASK = "objects"
SEG_TASKS = (ALL_SOURCES_TASK, *TASK_SOURCES)  # the default tasks, each with a head per loss
WORKING_SIZE_IMAGES_PER_SOURCE = 40  # training photos per source scored at each candidate size


@dataclass(frozen=True)
class Source:
    """A named segmentation data folder, e.g. ``flowers=data/oxford17flowers``."""

    name: str
    root: Path

    @classmethod
    def parse(cls, spec: str) -> "Source":
        name, sep, root = spec.partition("=")
        if not sep or not name or not root:
            raise DataError(f"segmentation source {spec!r} is not NAME=FOLDER (e.g. flowers=data/oxford17flowers)")
        return cls(name, Path(root))


def concatenate(parts: dict[str, SegmentationTensors]) -> SegmentationTensors:
    """Sources' tensors as one mixture whose ``sources`` says where each image came from."""
    names = tuple(parts)
    return SegmentationTensors(
        torch.cat([p.images for p in parts.values()]),
        torch.cat([p.masks for p in parts.values()]),
        [f"{source}:{n}" for source, p in parts.items() for n in p.names],
        torch.cat([torch.full((len(p.names),), i, dtype=torch.long) for i, p in enumerate(parts.values())]),
        names,
    )


def balanced_epoch(sources: torch.Tensor, per_source: int | Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """Indices of one epoch of a mixture: ``per_source`` images from every source (or
    ``per_source[i]`` from source ``i``; 0 or less: each of its images once), each source's
    images in a fresh random order, repeated when it has fewer, all shuffled together. The
    mixture's balance is chosen, not dictated by the sources' sizes: 232 horses can weigh
    as much as 900 DAVIS frames."""
    present = sources.unique(sorted=True).tolist()
    counts = [per_source] * (max(present) + 1) if isinstance(per_source, int) else list(per_source)
    chosen = []
    for source in present:
        members = torch.nonzero(sources.cpu() == source).flatten()
        wanted = counts[source] if counts[source] > 0 else len(members)
        repeats = -(-wanted // len(members))
        order = torch.cat([members[torch.randperm(len(members), generator=generator)] for _ in range(repeats)])
        chosen.append(order[:wanted])
    everything = torch.cat(chosen)
    return everything[torch.randperm(len(everything), generator=generator)]


def resolve_sources(specs: list[str] | None) -> list[Source]:
    """The named sources to train on: the given NAME=FOLDER specs, or the default folders present."""
    if specs:
        sources = [Source.parse(s) if "=" in s else Source(Path(s).name, Path(s)) for s in specs]
    else:
        root = data_root()
        sources = [Source(n, root / f) for n, f in DEFAULT_SOURCES.items() if (root / f).is_dir()]
        if not sources:
            raise DataError(
                f"no segmentation data in {root}: pass --seg-data NAME=FOLDER (photos with binary masks) "
                "or set COLORSEG_DATA to a folder holding davis2016/, oxford17flowers/ or weizmann_horse_db/"
            )
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise DataError(f"segmentation source names must differ: {' '.join(names)}")
    return sources


def resolve_tasks(specs: list[str] | None, sources: list[Source]) -> dict[str, list[str]]:
    """Task name -> names of the sources its heads train and are scored on."""
    names = [s.name for s in sources]
    if not specs:
        tasks = {ALL_SOURCES_TASK: names}
        tasks.update({name: [name] for name in names if name in TASK_SOURCES})
        return tasks
    tasks = {}
    for spec in specs:
        task, sep, listed = spec.partition("=")
        chosen = [n for n in listed.split(",") if n]
        unknown = sorted(set(chosen) - set(names))
        if not sep or not task or not chosen or unknown:
            raise DataError(
                f"--seg-tasks {spec!r}: expected TASK=SOURCE[,SOURCE...] with sources among {', '.join(names)}"
            )
        tasks[task] = chosen
    return tasks


@dataclass
class SegmentationData:
    train: seg_data.SegmentationTensors  # mixture of every source's training split, square
    val: dict[str, seg_data.SegmentationTensors]  # per source, square (body and head curves)
    val_samples: dict[str, list[seg_data.Sample]]  # per source, at the masks' own size (final scores)
    size_samples: dict[str, list[seg_data.Sample]]  # a few training photos per source (inference size)
    description: dict[str, Any]  # what the weights record: per source its layout, split rule, counts


def load_data(sources: list[Source], size: int, device: torch.device, download: bool) -> SegmentationData:
    train, val, val_samples, size_samples, description = {}, {}, {}, {}, {}
    for source in sources:
        if download:
            oxford17.prepare_oxford17(source.root, download=True)
        layout, pairs = seg_data.find_pairs(source.root)
        train[source.name] = seg_data.load_split_tensors(source.root, "train", size)
        val_samples[source.name] = seg_data.load_samples(source.root, "val")
        val[source.name] = seg_data.samples_to_tensors(val_samples[source.name], size).to(device)
        train_pairs = seg_data.select_split(source.root, "train")
        step = max(1, len(train_pairs) // WORKING_SIZE_IMAGES_PER_SOURCE)
        size_samples[source.name] = [
            seg_data.read_sample(p, layout) for p in train_pairs[::step][:WORKING_SIZE_IMAGES_PER_SOURCE]
        ]
        # Data are recorded by name, layout, counts and a content hash: never a machine path.
        description[source.name] = {
            "folder": source.root.name,
            "layout": layout,
            "split": seg_data.SPLIT_RULES[layout],
            "train_images": len(train[source.name].names),
            "val_images": len(val_samples[source.name]),
            "names_sha256": names_digest(sorted(p.name for p in pairs)),
        }
    return SegmentationData(concatenate(train).to(device), val, val_samples, size_samples, description)
