"""What every training pipeline is told about the run as a whole (train_all.py builds it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from colorseg.provenance import command_line


@dataclass(frozen=True)
class RunConfig:
    weights_dir: Path  # where the weight set is committed
    report_dir: Path  # reports and curves
    device: torch.device
    # The command that regenerates this run, recorded in every JSON (no machine paths).
    command: str = field(default_factory=command_line)
