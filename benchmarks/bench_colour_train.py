"""Training-loop throughput: colorseg's loop against the assignment's own loop, same net.

The reference loop re-implements the assignment's code faithfully: numpy arrays sliced
into batches, ``torch.from_numpy(...).float()`` per batch, the loss computed on
``outputs.transpose(1, 3).contiguous().view(...)``, ``loss.item()`` per batch, and a
validation pass in batches of the training size with numpy bookkeeping.
Each loop first runs one untimed warm-up epoch (training plus validation); then the loops
take turns, one timed epoch each, on the same data.

    python benchmarks/bench_colour_train.py --data ../shared/data/cifar10-images [--epochs 3] [--threads 1]
    python benchmarks/bench_colour_train.py --compile   # colorseg's loop through torch.compile too

Prints images per second (training images of an epoch / median seconds of an epoch's
training + validation) for each net and the ratio; with --compile also the compiled loop
and its warm-up epoch (which pays for compiling). A second table gives, per loop, the
seconds an epoch spends in its convolutions alone (each conv call replayed on its own in
that loop's memory layout) and the ratio colorseg would reach if nothing else cost time.
Timings only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from colorseg.colour.data import load_horses, to_grey
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.colour.palette import fit_palette, label_images
from colorseg.colour.recipes import get_recipe
from colorseg.colour.train import build_colour_optimizer, evaluate_colour_net, train_colour_epoch
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


class _RecordConvolutions(TorchFunctionMode):
    """Records every conv2d / conv_transpose2d call a forward pass makes, with its arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (F.conv2d, F.conv_transpose2d):
            self.calls.append((func, args, kwargs))
        return func(*args, **kwargs)


def convolution_replay(model: nn.Module, images: torch.Tensor, train: bool) -> Callable[[], None]:
    """A function that runs the net's convolutions alone on ``images``: every conv call of
    one forward pass replayed on its own, with its backward (input gradient only where the
    net needs it) when ``train``. The floor a loop around this net cannot go under."""
    with _RecordConvolutions() as recorder:
        model(images)

    def fresh(value):
        if isinstance(value, torch.Tensor):
            return value.detach().requires_grad_(train and value.requires_grad)
        return value

    calls = [
        (func, [fresh(a) for a in args], {k: fresh(v) for k, v in kwargs.items()})
        for func, args, kwargs in recorder.calls
    ]

    def run() -> None:
        for func, args, kwargs in calls:
            if train:
                out = func(*args, **kwargs)
                out.backward(torch.ones_like(out))
            else:
                with torch.inference_mode():
                    func(*args, **kwargs)

    run()  # warm-up: oneDNN picks and caches its kernels on the first call
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/cifar10-images")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loop (after one warm-up epoch)")
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
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} timed epoch(s), "
        f"batch {recipe.batch_size}"
    )
    header = f"{'net':<18}{'assignment img/s':>18}{'colorseg img/s':>16}{'ratio':>8}"
    if args.compile:
        header += f"{'compiled img/s':>16}{'ratio':>8}{'warm-up s':>11}"
    print(header)

    def convolution_floor(reference: nn.Module, model: nn.Module, repeats: int = 10) -> tuple[float, float]:
        """Seconds per epoch of the convolutions alone: the assignment's layout, colorseg's.
        The two take turns, like the epochs, and each gives the median of its turns."""
        train_steps = math.ceil(len(grey_t) / recipe.batch_size)
        val_steps = math.ceil(len(val_t) / recipe.batch_size)  # both loops validate in batches of 100
        batch = grey_t[: recipe.batch_size]
        replays = []
        for net, images in ((reference, batch), (model, batch.contiguous(memory_format=torch.channels_last))):
            net.train()
            train = convolution_replay(net, images, train=True)
            net.eval()
            replays.append((train, convolution_replay(net, images, train=False)))
        seconds = [[], []]
        for _ in range(repeats):
            for (train, validate), times in zip(replays, seconds):
                started = time.perf_counter()
                train()
                trained = time.perf_counter()
                validate()
                times.append(train_steps * (trained - started) + val_steps * (time.perf_counter() - trained))
        return statistics.median(seconds[0]), statistics.median(seconds[1])

    floors = []
    for name in COLOUR_MODEL_NAMES:
        torch.manual_seed(0)
        reference = create_model(name)
        reference_optimizer = torch.optim.Adam(reference.parameters(), lr=recipe.lr)
        loops = {
            "assignment": lambda: assignment_epoch(
                reference, reference_optimizer, grey_np, cat_np, val_np, val_cat_np, recipe.batch_size, 24
            )
        }
        for compiled in (False, True) if args.compile else (False,):
            torch.manual_seed(0)
            model = create_model(name).to(device, memory_format=torch.channels_last)
            runner = torch.compile(model, dynamic=False) if compiled else model
            optimizer, scheduler = build_colour_optimizer(model, recipe, math.ceil(len(grey_t) / recipe.batch_size))
            generator = torch.Generator().manual_seed(0)

            def epoch(runner=runner, optimizer=optimizer, scheduler=scheduler, generator=generator) -> None:
                train_colour_epoch(runner, optimizer, scheduler, grey_t, cat_t, recipe, generator)
                evaluate_colour_net(runner, val_t, val_cat_t)

            loops["compiled" if compiled else "colorseg"] = epoch

        warm_up = {}
        for loop, run_epoch in loops.items():
            started = time.perf_counter()
            run_epoch()
            warm_up[loop] = time.perf_counter() - started
        # The loops take turns epoch by epoch, so a busy spell on the machine slows both alike;
        # each loop's rate is the median over its timed epochs.
        seconds = {loop: [] for loop in loops}
        for _ in range(args.epochs):
            for loop, run_epoch in loops.items():
                started = time.perf_counter()
                run_epoch()
                seconds[loop].append(time.perf_counter() - started)
        rates = {loop: len(grey_t) / statistics.median(times) for loop, times in seconds.items()}
        line = f"{name:<18}{rates['assignment']:>18.0f}"
        for loop in [loop for loop in loops if loop != "assignment"]:
            line += f"{rates[loop]:>16.0f}{rates[loop] / rates['assignment']:>7.2f}x"
        if args.compile:
            line += f"{warm_up['compiled']:>11.1f}"
        print(line, flush=True)
        floors.append((name, seconds, convolution_floor(reference, model)))

    # How close each loop is to its convolutions: an epoch's conv calls alone (training
    # batches with backward, validation batches forward only) in each loop's memory layout.
    print("\nconvolutions alone, seconds per epoch (the rest of an epoch is everything else):")
    print(f"{'net':<18}{'assignment':>12}{'of epoch':>10}{'colorseg':>10}{'of epoch':>10}{'ratio bound':>13}")
    for name, seconds, (reference_floor, colorseg_floor) in floors:
        reference_epoch, colorseg_epoch = (
            statistics.median(seconds["assignment"]),
            statistics.median(seconds["colorseg"]),
        )
        print(
            f"{name:<18}{reference_floor:>11.2f}s{reference_floor / reference_epoch:>10.0%}"
            f"{colorseg_floor:>9.2f}s{colorseg_floor / colorseg_epoch:>10.0%}"
            # The ratio colorseg's loop would reach if everything but its convolutions were free.
            f"{reference_epoch / colorseg_floor:>12.2f}x"
        )


if __name__ == "__main__":
    main()
