"""What every training pipeline is told about the run as a whole (train_all.py builds it)."""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from colorseg.training import Checkpointing, amp_dtype_name
from colorseg.training.distributed import DistContext
from colorseg.training.provenance import command_line


@dataclass(frozen=True)
class RunConfig:
    weights_dir: Path  # where the weight set is committed
    report_dir: Path  # reports and curves
    device: torch.device
    # The command that regenerates this run, recorded in every JSON (no machine paths).
    command: str = field(default_factory=command_line)
    ctx: DistContext = field(default_factory=DistContext)  # torchrun's ranks; one process by default
    checkpointing: Checkpointing = field(default_factory=Checkpointing)

    def hardware(self) -> dict[str, object]:
        """What weight descriptions and reports record about where the run trained."""
        device = self.device
        return {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "world_size": self.ctx.world_size,
            "backend": self.ctx.backend,
            "amp_dtype": amp_dtype_name(device),
        }


class StageTimer:
    """CPU and wall seconds of each named stage: ``with timer("body"): ...``."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        yield
        self.cpu[name] = round(time.process_time() - cpu_start, 1)
        self.wall[name] = round(time.perf_counter() - wall_start, 1)

    def of(self, *names: str) -> dict[str, dict[str, float]]:
        return {"cpu_seconds": {k: self.cpu[k] for k in names}, "wall_seconds": {k: self.wall[k] for k in names}}
