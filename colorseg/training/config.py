"""What every training pipeline is told about the run as a whole (train_all.py builds it)."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

from colorseg.training import amp_dtype_name
from colorseg.training.distributed import DistContext
from colorseg.training.provenance import command_line
from colorseg.training import Checkpointing


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
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
            "world_size": self.ctx.world_size,
            "backend": self.ctx.backend,
            "amp_dtype": amp_dtype_name(device),
        }
