"""Training-loop throughput: colorseg's loop against the assignment's own loop, same net.

The reference loop re-implements the assignment's code faithfully: numpy arrays sliced
into batches, ``torch.from_numpy(...).float()`` per batch, the loss computed on
``outputs.transpose(1, 3).contiguous().view(...)``, ``loss.item()`` per batch, and a
validation pass in batches of the training size with numpy bookkeeping.
Each loop first runs one untimed warm-up epoch (training plus validation), then the timed
epochs, on the same data.

    python benchmarks/bench_colour_train.py --data ../shared/data/cifar10-images [--epochs 2] [--threads 1]
    python benchmarks/bench_colour_train.py --compile   # colorseg's loop through torch.compile too

Prints images per second (training images of an epoch / seconds for train + validation)
for each net and the ratio; with --compile also the compiled loop and its warm-up epoch
(which pays for compiling). Timings only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from colorseg.cifar import load_horses, to_grey
from colorseg.colour_models import COLOUR_MODEL_NAMES
from colorseg.colour_train import build_optimizer, evaluate, get_recipe, train_one_epoch
from colorseg.palette import fit_palette, label_images
from colorseg.registry import create_model


def assignment_epoch(model, optimizer, train_grey, train_cat, val_grey, val_cat, batch_size, num_colours):
    """One epoch exactly as the assignment's train() does it (CPU path)."""

    def get_batch(x, y):
        for i in range(0, np.shape(x)[0], batch_size):
            yield x[i : i + batch_size], y[i : i + batch_size]

    def compute_loss(criterion, outputs, labels):
        loss_out = outputs.transpose(1, 3).contiguous().view([batch_size * 32 * 32, num_colours])
        loss_lab = labels.transpose(1, 3).contiguous().view([batch_size * 32 * 32])
        return criterion(loss_out, loss_lab)

    criterion = nn.CrossEntropyLoss()
    model.train()
    losses = []
    for xs, ys in get_batch(train_grey, train_cat):
        images, labels = torch.from_numpy(xs).float(), torch.from_numpy(ys).long()
        optimizer.zero_grad()
        loss = compute_loss(criterion, model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.data.item())
    model.eval()
    correct, total, val_losses = 0.0, 0.0, []
    for xs, ys in get_batch(val_grey, val_cat):
        images, labels = torch.from_numpy(xs).float(), torch.from_numpy(ys).long()
        outputs = model(images)
        val_losses.append(compute_loss(criterion, outputs, labels).data.item())
        _, predicted = torch.max(outputs.data, 1, keepdim=True)
        total += labels.size(0) * 32 * 32
        correct += (predicted == labels.data).sum()
    return float(np.mean(losses)), float(np.mean(val_losses)), float(100 * correct / total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/cifar10-images")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per loop (after one warm-up epoch)")
    parser.add_argument("--compile", action="store_true", help="also time colorseg's loop through torch.compile")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    horses = load_horses(args.data)
    palette = fit_palette(horses.train, iterations=10)
    grey_t, cat_t = to_grey(horses.train), label_images(horses.train, palette)
    val_t, val_cat_t = to_grey(horses.test), label_images(horses.test, palette)
    # The assignment keeps numpy arrays and labels shaped [N, 1, 32, 32].
    grey_np, cat_np = grey_t.numpy(), cat_t[:, None].numpy()
    val_np, val_cat_np = val_t.numpy(), val_cat_t[:, None].numpy()
    recipe = get_recipe("assignment")
    device = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} epoch(s), batch {recipe.batch_size}")
    header = f"{'net':<18}{'assignment img/s':>18}{'colorseg img/s':>16}{'ratio':>8}"
    if args.compile:
        header += f"{'compiled img/s':>16}{'ratio':>8}{'warm-up s':>11}"
    print(header)

    def timed(run_epoch) -> tuple[float, float]:
        """(seconds of the warm-up epoch, images per second over the timed epochs)"""
        started = time.perf_counter()
        run_epoch()
        warm_up = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(args.epochs):
            run_epoch()
        return warm_up, args.epochs * len(grey_t) / (time.perf_counter() - started)

    for name in COLOUR_MODEL_NAMES:
        torch.manual_seed(0)
        reference = create_model(name)
        reference_optimizer = torch.optim.Adam(reference.parameters(), lr=recipe.lr)
        _, reference_rate = timed(
            lambda: assignment_epoch(reference, reference_optimizer, grey_np, cat_np, val_np, val_cat_np, recipe.batch_size, 24)
        )
        line = f"{name:<18}{reference_rate:>18.0f}"
        for compiled in (False, True) if args.compile else (False,):
            torch.manual_seed(0)
            model = create_model(name).to(device, memory_format=torch.channels_last)
            runner = torch.compile(model, dynamic=False) if compiled else model
            optimizer, scheduler = build_optimizer(model, recipe, math.ceil(len(grey_t) / recipe.batch_size))
            generator = torch.Generator().manual_seed(0)

            def epoch() -> None:
                train_one_epoch(runner, optimizer, scheduler, grey_t, cat_t, recipe, generator)
                evaluate(runner, val_t, val_cat_t)

            warm_up, rate = timed(epoch)
            line += f"{rate:>16.0f}{rate / reference_rate:>7.2f}x"
            if compiled:
                line += f"{warm_up:>11.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
