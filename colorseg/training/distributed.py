"""Data-parallel training with PyTorch's own DistributedDataParallel, as torchrun launches it.

    torchrun --standalone --nproc_per_node=2 train_all.py ...

Every rank holds the whole data set and draws the SAME global batch from a generator with
the same seed; :meth:`DistContext.shard` gives each rank a contiguous slice of it, DDP
averages the gradients, and :meth:`DistContext.loss_scale` corrects that average for
uneven slices. One step is then a single-process step on the global batch: exactly for
nets without BatchNorm; BatchNorm normalises over the rank's slice unless converted to
SyncBatchNorm (CUDA only). Random draws that are per sample (augmentation) must be drawn
for the global batch on every rank and sliced the same way, so that all ranks' generators
stay in step (and one rank's checkpoint holds every rank's state).

Without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) everything is a single
process: no process group, and every method is a cheap no-op.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None  # None: no process group

    @property
    def is_main(self) -> bool:
        """Only this rank writes files (weights, checkpoints, reports) and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch's index tensor.

        Equal slices when len(index) is divisible by world_size; otherwise the first
        len % world_size ranks get one more (torch.tensor_split), and a batch shorter than
        world_size leaves some ranks empty, which BatchNorm and mean losses cannot take:
        keep the global batch >= world_size (drop or merge a tiny last batch)."""
        if self.world_size == 1:
            return index
        return index.tensor_split(self.world_size)[self.rank]

    def loss_scale(self, local: int, total: int) -> float:
        """Multiply this rank's mean loss by this before ``backward``: DDP averages the
        ranks' gradients with equal weights, so slices of unequal size would otherwise
        count unequally. 1.0 when the slices are equal."""
        return self.world_size * local / total

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of ``tensor`` over the ranks (a new tensor; the input is untouched)."""
        if not self.distributed:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size

    def reduce_metrics(self, sums: dict[str, torch.Tensor], count: int | torch.Tensor) -> dict[str, float]:
        """Global means from per-rank sums and sample counts: one all_reduce of the sums
        and the count together, then one division (exact, whatever the slice sizes)."""
        names = list(sums)
        values = [torch.as_tensor(sums[n], dtype=torch.float64, device=self.device) for n in names]
        packed = torch.stack([*values, torch.as_tensor(count, dtype=torch.float64, device=self.device)])
        if self.distributed:
            dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        packed = packed.cpu()  # the one host sync
        return {name: (packed[i] / packed[-1]).item() for i, name in enumerate(names)}

    def wrap(self, model: nn.Module, *, sync_batchnorm: bool = False) -> nn.Module:
        """DistributedDataParallel around ``model`` (unchanged in a single process). Keep a
        reference to the plain module: it is what checkpoints and weight files save."""
        if not self.distributed:
            return model
        if sync_batchnorm:
            if self.device.type != "cuda":
                raise ValueError("SyncBatchNorm runs on CUDA only; on CPU (gloo) use sync_batchnorm=False")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def sync_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every rank. DDP does so
        at the start of each training forward, so after the last step the ranks differ;
        call this before evaluating or saving."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index])
        elif self.distributed:
            dist.barrier()

    def cleanup(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel (or the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _requested_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def setup(device: str | torch.device = "auto") -> DistContext:
    """Read torchrun's environment and join the process group (nccl on CUDA, else gloo).

    Under torchrun a CUDA device's index comes from LOCAL_RANK, whatever index ``device``
    names; without torchrun (or with WORLD_SIZE=1) ``device`` is used as given."""
    requested = _requested_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(device=requested)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if requested.type == "cuda":
        requested = torch.device("cuda", local_rank)
        torch.cuda.set_device(requested)
    backend = "nccl" if requested.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, requested, backend)


# Mixed precision: bfloat16 autocast where the hardware has it. bfloat16 keeps float32's exponent
# range, so unlike float16 it needs no GradScaler; on the CPU autocast would run convolutions
# through slower bf16 paths on most machines, so CPU training stays in float32.
def _bf16_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def autocast_for(device: str | torch.device) -> contextlib.AbstractContextManager:
    """Context for the forward pass and the loss (not ``backward``/``optimizer.step``)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if _bf16_cuda(device) else contextlib.nullcontext()


def amp_dtype_name(device: str | torch.device) -> str:
    """What :func:`autocast_for` computes in on ``device``, for weight descriptions."""
    return "bfloat16" if _bf16_cuda(device) else "float32"
