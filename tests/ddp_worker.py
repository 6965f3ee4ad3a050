"""Run under torchrun (gloo, CPU) by tests/test_distributed.py, and imported by it for the
single-process reference: a few steps of a conv net without and with BatchNorm on fixed
synthetic data, global batch 8 over N=29 samples (so the last batch, 5, splits 3 + 2).

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from colorseg.training.distributed import DistContext, setup

N, BATCH, EPOCHS, CLASSES = 29, 8, 3, 4
KINDS = ("plain", "bn")


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(N, 3, 8, 8, generator=generator)
    # Learnable labels (the argmax of a fixed 1x1 map), so that the loss moves well away
    # from ln(4) and a tolerance on it means something.
    projection = torch.randn(CLASSES, 3, generator=generator)
    y = torch.einsum("kc,nchw->nkhw", projection, x).argmax(dim=1)
    return x, y


def make_net(kind: str) -> nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank and in the reference
    norm = [nn.BatchNorm2d(8)] if kind == "bn" else []
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *norm, nn.ReLU(), nn.Conv2d(8, CLASSES, 1))


def train(kind: str, ctx: DistContext) -> tuple[nn.Module, dict[str, float]]:
    x, y = make_data()
    model = make_net(kind)
    runner = ctx.wrap(model)
    params = model.parameters()
    optimizer = torch.optim.Adam(params, lr=1e-2) if kind == "bn" else torch.optim.SGD(params, lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(1)  # same seed on every rank: the same global batches
    for _ in range(EPOCHS):
        loss_sum, count = torch.zeros((), dtype=torch.float64), 0
        for batch in torch.randperm(N, generator=generator).split(BATCH):
            local = ctx.shard(batch)
            loss = F.cross_entropy(runner(x[local]), y[local])
            optimizer.zero_grad(set_to_none=True)
            (loss * ctx.loss_scale(len(local), len(batch))).backward()
            optimizer.step()
            loss_sum += loss.detach().double() * len(local)
            count += len(local)
        train_loss = ctx.reduce_metrics({"loss": loss_sum}, count)["loss"]
    ctx.sync_buffers(model)
    model.eval()
    with torch.no_grad():
        eval_loss = F.cross_entropy(model(x), y).item()
    return model, {"train_loss": train_loss, "eval_loss": eval_loss}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    ctx = setup("cpu")
    results: dict = {"world_size": ctx.world_size, "backend": ctx.backend}
    for kind in KINDS:
        model, results[kind] = train(kind, ctx)
        if ctx.is_main:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"{kind}.safetensors"))
    values = torch.arange(7, dtype=torch.float64)  # uneven slices: 4 + 3, global mean exactly 3
    local = ctx.shard(values)
    results["reduced_mean"] = ctx.reduce_metrics({"v": local.sum()}, len(local))["v"]
    results["rank_mean"] = ctx.all_reduce_mean(torch.tensor(float(ctx.rank))).item()
    ctx.barrier()
    if ctx.is_main:
        (out / "results.json").write_text(json.dumps(results))
    ctx.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
