"""Cost of a training replay: recording 8 CIFAR thumbnails per epoch against one training epoch.

One epoch of colorseg.colour.train.train_colour_epoch (the net's default recipe) runs on
synthetic 32x32 data of the training set's size; the replay step is what a training loop
would add per epoch: the net on 8 fixed validation images in eval mode, argmax decoded to
palette colours, ReplayRecorder.record, plus the final save spread over the epochs.

    python benchmarks/bench_replay.py [--net UNet] [--images 5000] [--epochs 60] [--threads 2]

Prints seconds per epoch, per replay step and the ratio. Timings only; nothing is asserted.

Measured on a 2-core CPU shared with a training job, 5000 synthetic images, 60 epochs:
UNet (batch 50) epoch 34.4 s, replay step 7.7 ms, save 94 ms (34 KiB): ratio 2.7e-4;
PoolUpsampleNet (batch 16) epoch 43.2 s, step 7.3 ms, save 69 ms: ratio 2.0e-4. A run
with a concurrent test suite once gave a 398 ms median step (threads contending for the
two cores), still 0.5% of an epoch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.colour.palette import NUM_COLOURS, palette_to_image
from colorseg.colour.recipes import get_recipe
from colorseg.colour.train import build_colour_optimizer, train_colour_epoch
from colorseg.registry import create_model
from colorseg.replay import ReplayRecorder


def replay_step(model, grey, palette, recorder, epoch) -> None:
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        labels = model(grey).argmax(dim=1)  # [8, 32, 32]
        images = (palette_to_image(labels, palette) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1)
    recorder.record(epoch, "prediction", images.cpu().numpy())
    model.train(was_training)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", choices=COLOUR_MODEL_NAMES, default="UNet")
    parser.add_argument("--images", type=int, default=5000, help="training images per epoch (CIFAR horses: 5000)")
    parser.add_argument("--epochs", type=int, default=60, help="epochs the final save is spread over")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    grey = torch.rand(args.images, 1, 32, 32, generator=generator)
    labels = torch.randint(0, NUM_COLOURS, (args.images, 32, 32), generator=generator)
    palette = torch.rand(NUM_COLOURS, 3, generator=generator)
    # Distillation is left out: it needs a trained teacher and only makes the epoch longer.
    plain = replace(get_recipe("default", args.net), teacher=None, distill_weight=0.0)
    model = create_model(args.net, num_colours=NUM_COLOURS).to(memory_format=torch.channels_last)
    optimizer, scheduler = build_colour_optimizer(model, plain, -(-args.images // plain.batch_size))
    warm = slice(0, 4 * plain.batch_size)
    train_colour_epoch(model, optimizer, None, grey[warm], labels[warm], plain, generator)  # warm-up

    started = time.perf_counter()
    train_colour_epoch(model, optimizer, scheduler, grey, labels, plain, generator)
    epoch_seconds = time.perf_counter() - started

    recorder = ReplayRecorder("colour", [f"val_{i}" for i in range(8)])
    fixed = grey[:8].contiguous(memory_format=torch.channels_last)
    replay_step(model, fixed, palette, recorder, 0)  # warm-up
    steps = []
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        replay_step(model, fixed, palette, recorder, epoch)
        steps.append(time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        recorder.save(folder, "replay")
        save_seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(folder).iterdir())
    per_epoch = statistics.median(steps) + save_seconds / args.epochs
    print(f"{args.net}, {args.images} images, batch {plain.batch_size}, {torch.get_num_threads()} threads")
    print(f"training epoch          {epoch_seconds:9.3f} s")
    print(f"replay step (median)    {statistics.median(steps) * 1000:9.3f} ms")
    print(f"save of {args.epochs} epochs      {save_seconds * 1000:9.3f} ms ({size / 1024:.1f} KiB on disk)")
    print(f"replay / epoch          {per_epoch / epoch_seconds:9.2e}  ({per_epoch / epoch_seconds:.4%})")


if __name__ == "__main__":
    main()
