"""A tiny model and epoch loop for checkpoint tests: AdamW + OneCycleLR, shuffling and
input noise from named generators, and dropout drawing from torch's global generator,
so that resuming is bit for bit only if every piece of state comes back."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

N, SIZE, CLASSES, BATCH, EPOCHS = 24, 8, 3, 8, 4


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(123)
    x = torch.randn(N, 1, SIZE, SIZE, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 0] > 1).long()
    return x, y


def make_run(seed: int = 0):
    """Fresh model, optimizer, scheduler and generators, as a training script builds them."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout2d(0.2), nn.Conv2d(4, CLASSES, 1)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, epochs=EPOCHS, steps_per_epoch=N // BATCH)
    generators = {
        "shuffle": torch.Generator().manual_seed(seed + 1),
        "augment": torch.Generator().manual_seed(seed + 2),
    }
    return model, optimizer, scheduler, generators


def train_epoch(model, optimizer, scheduler, generators, x, y) -> torch.Tensor:
    model.train()
    total = torch.zeros(())
    for index in torch.randperm(N, generator=generators["shuffle"]).split(BATCH):
        noisy = x[index] + 0.1 * torch.randn(x[index].shape, generator=generators["augment"])
        loss = F.cross_entropy(model(noisy), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.detach() * len(index)
    return total / N
