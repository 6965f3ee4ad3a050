"""Mixed precision: bfloat16 autocast where the hardware has it, nothing elsewhere.

bfloat16 keeps float32's exponent range, so unlike float16 it needs no GradScaler; on CPU
autocast would run the convolutions through slower bf16 paths on most machines, so CPU
training stays in float32.
"""

from __future__ import annotations

import contextlib

import torch


def _bf16_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def autocast_for(device: str | torch.device) -> contextlib.AbstractContextManager:
    """Context for the forward pass and the loss (not ``backward``/``optimizer.step``)."""
    if _bf16_cuda(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def amp_dtype_name(device: str | torch.device) -> str:
    """What :func:`autocast_for` computes in on ``device``, for weight descriptions."""
    return "bfloat16" if _bf16_cuda(device) else "float32"
