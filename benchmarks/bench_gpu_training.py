"""Training time of every stage on whatever device this runs on (CUDA when present, else CPU).

    python benchmarks/bench_gpu_training.py                          # CUDA: the full measurement
    python benchmarks/bench_gpu_training.py --cifar data/cifar10-images --seg-data davis=data/davis2016 ...
    python benchmarks/bench_gpu_training.py --quick --device cpu      # a smoke run: tiny sizes, 1 epoch
    python benchmarks/bench_gpu_training.py --amp off --contiguous --compile   # compare the options

Colour: the three nets x 25 epochs with the assignment's recipe (Adam 1e-3, batch 100, data
order), on real CIFAR-10 horses with --cifar DIR, else on 5000 + 1000 synthetic 32x32 images of
the same shape. Segmentation: body epochs (the default recipe: AdamW one-cycle, augmentation,
batch 8, its per-source epoch of 896 images) at 224 px on --seg-data sources or synthetic images,
the frozen body's features, and the
six heads (three tasks x two losses, the default head recipe) on those features. Each stage runs
the training code's own pieces (colorseg.training.train_one_epoch with each half's prepare and
loss, compute_features, train_head), so the numbers are what train_all.py would spend, less
data loading, checkpoints and scoring.

Options: --amp auto (bf16 autocast on CUDA, as training does) or off (float32); --contiguous
(NCHW instead of the channels-last layout training uses); --compile (torch.compile the colour
nets and the body). Prints one line per stage and the device's name; --json FILE writes them too.
Timings only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from colorseg import training
from colorseg.colour.data import load_horses, to_grey
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.colour.palette import NUM_COLOURS, fit_palette, label_images
from colorseg.colour.recipes import get_recipe
from colorseg.colour.train import build_colour_optimizer, evaluate_colour_net, train_colour_epoch
from colorseg.registry import create_model
from colorseg.segmentation import heads as seg_heads
from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation import train as seg_train
from colorseg.segmentation.augment import apply_augmentation, draw_augmentation
from colorseg.segmentation.data import SegmentationTensors
from colorseg.segmentation.models import DeepLabV3Body, DeepLabV3Head, SegmentationNet
from colorseg.segmentation.sources import load_data, resolve_sources
from colorseg.training import amp_dtype_name


def device_name(device: torch.device) -> str:
    return (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.processor() or platform.machine()}"
    )


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def synthetic_rgb(count: int, size: int, seed: int) -> torch.Tensor:
    """uint8 [count, 3, size, size]: smooth colour with a darker square, of real data's shape."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(count, 3, 1, 1, generator=generator) * 200 + 30
    ramp = torch.linspace(-40, 40, size)
    images = (
        (base + ramp.view(1, 1, 1, size) * torch.rand(count, 3, 1, 1, generator=generator))
        .expand(-1, -1, size, -1)
        .clone()
    )
    images[:, :, size // 4 : size // 2, size // 4 : size // 2] *= 0.4
    return images.clamp(0, 255).to(torch.uint8)


def bench_colour(args, device: torch.device) -> dict[str, float]:
    if args.cifar:
        horses = load_horses(args.cifar)
        train_rgb, val_rgb = horses.train, horses.test
    else:
        train_rgb, val_rgb = synthetic_rgb(args.colour_train, 32, 0), synthetic_rgb(args.colour_val, 32, 1)
    palette = fit_palette(train_rgb, NUM_COLOURS, seed=0)
    train = (to_grey(train_rgb).to(device), label_images(train_rgb, palette).to(device))
    val = (to_grey(val_rgb).to(device), label_images(val_rgb, palette).to(device))
    layout = torch.contiguous_format if args.contiguous else torch.channels_last
    seconds = {}
    for name in COLOUR_MODEL_NAMES:
        recipe = get_recipe("assignment", epochs=args.colour_epochs)
        torch.manual_seed(recipe.seed)
        model = create_model(name, kernel=recipe.kernel, num_filters=recipe.num_filters, num_colours=len(palette))
        model.to(device, memory_format=layout)
        optimizer, scheduler = build_colour_optimizer(model, recipe, math.ceil(len(train[0]) / recipe.batch_size))
        runner = torch.compile(model, dynamic=False) if args.compile else model
        generator = torch.Generator(device=device).manual_seed(recipe.seed)
        started = clock(device)
        for _ in range(recipe.epochs):
            train_colour_epoch(runner, optimizer, scheduler, *train, recipe, generator)
            evaluate_colour_net(runner, *val)
        seconds[f"colour_{name}_{recipe.epochs}_epochs"] = clock(device) - started
        print(
            f"colour {name}: {recipe.epochs} epochs in {seconds[f'colour_{name}_{recipe.epochs}_epochs']:.1f}s",
            flush=True,
        )
    return seconds


def seg_tensors(args, device: torch.device) -> SegmentationTensors:
    if args.seg_data:
        return load_data(resolve_sources(args.seg_data), args.seg_size, device, download=False).train
    images = synthetic_rgb(args.seg_images, args.seg_size, 2)
    masks = torch.zeros(args.seg_images, args.seg_size, args.seg_size, dtype=torch.uint8)
    quarter = args.seg_size // 4
    masks[:, quarter : 2 * quarter, quarter : 2 * quarter] = 1
    sources = torch.arange(args.seg_images) % 3  # three sources, named as the default mixture's
    return SegmentationTensors(
        images, masks, [str(i) for i in range(args.seg_images)], sources, ("davis", "flowers", "horses")
    ).to(device)


def bench_segmentation(args, device: torch.device) -> dict[str, float]:
    train = seg_tensors(args, device)
    recipe = seg_train.BodyRecipe(batch_size=args.seg_batch_size)
    if args.quick:
        recipe = seg_train.BodyRecipe(batch_size=args.seg_batch_size, samples_per_source=8, source_samples={})
    layout = torch.contiguous_format if args.contiguous else torch.channels_last
    torch.manual_seed(0)
    net = SegmentationNet(DeepLabV3Body(), DeepLabV3Head()).to(device, memory_format=layout)
    generator = torch.Generator().manual_seed(0)
    augment_generator = torch.Generator(device=device).manual_seed(1)
    steps = -(-len(seg_train.epoch_order(train, recipe, torch.Generator().manual_seed(0))) // recipe.batch_size)
    optimizer, scheduler = training.build_optimizer(
        net.parameters(),
        recipe.lr,
        weight_decay=recipe.weight_decay,
        schedule="onecycle",
        epochs=args.seg_epochs,
        steps_per_epoch=steps,
    )
    loss_fn = seg_losses.LOSSES[recipe.loss]

    def prepare(images, masks, index, rows):  # train_body's prepare at full size
        params = {k: v[rows] for k, v in draw_augmentation(len(images), recipe.augmentation, augment_generator).items()}
        photo, target = apply_augmentation(images[rows], masks[rows], params)
        return photo.float().contiguous(memory_format=layout), target

    runner = torch.compile(net, dynamic=False) if args.compile else net
    seconds = {}
    started = clock(device)
    for _ in range(args.seg_epochs):
        training.train_one_epoch(
            runner,
            optimizer,
            loss_fn,
            train.images,
            train.masks,
            batch_size=recipe.batch_size,
            prepare=prepare,
            scheduler=scheduler,
            order=seg_train.epoch_order(train, recipe, generator),
            sharded_prepare=True,
            min_batch=2,
        )
    seconds[f"seg_body_{args.seg_epochs}_epochs_{args.seg_size}px"] = elapsed = clock(device) - started
    print(
        f"segmentation body: {args.seg_epochs} epochs of {steps} steps at {args.seg_size} px in {elapsed:.1f}s",
        flush=True,
    )
    started = clock(device)
    seg_train.recompute_bn_statistics(net.body, train.images[: recipe.bn_images_per_source * 3], recipe.batch_size)
    features = seg_heads.compute_features(net.body, train.images, recipe.batch_size)
    seconds["seg_bn_and_features"] = elapsed = clock(device) - started
    print(f"segmentation BatchNorm recompute + features of {len(train.images)} images: {elapsed:.1f}s", flush=True)
    head_recipe = seg_heads.HEAD_RECIPES["default"]
    head_recipe = seg_heads.HeadRecipe(args.head_epochs or head_recipe.epochs, head_recipe.lr, head_recipe.batch_size)
    started = clock(device)
    for loss in ("cross_entropy", "soft_iou"):
        for _ in range(3):  # objects, flowers, horses (here each on every image: an upper bound)
            seg_heads.train_head(loss, features, train.masks, None, None, head_recipe, torch.Generator().manual_seed(0))
    seconds[f"seg_six_heads_{head_recipe.epochs}_epochs"] = elapsed = clock(device) - started
    print(f"segmentation heads: six x {head_recipe.epochs} epochs on cached features in {elapsed:.1f}s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one epoch each: shows the script works")
    parser.add_argument("--cifar", type=Path, help="CIFAR-10 (either layout) instead of synthetic colour data")
    parser.add_argument(
        "--seg-data", nargs="+", metavar="NAME=FOLDER", help="segmentation sources instead of synthetic"
    )
    parser.add_argument(
        "--amp", choices=("auto", "off"), default="auto", help="auto: bf16 autocast on CUDA, as training"
    )
    parser.add_argument("--contiguous", action="store_true", help="NCHW instead of channels-last")
    parser.add_argument("--compile", action="store_true", help="torch.compile the colour nets and the body")
    parser.add_argument("--only", nargs="+", choices=("colour", "segmentation"), default=["colour", "segmentation"])
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    args.colour_train, args.colour_val, args.colour_epochs = (200, 50, 1) if quick else (5000, 1000, 25)
    args.seg_size, args.seg_images, args.seg_epochs = (64, 24, 1) if quick else (224, 768, 2)
    args.seg_batch_size, args.head_epochs = (8, 2) if quick else (8, None)
    if args.amp == "off":  # the loop looks autocast_for up at call time
        training.autocast_for = lambda device: contextlib.nullcontext()
    header = {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "amp_dtype": amp_dtype_name(device) if args.amp == "auto" else "float32",
        "layout": "contiguous" if args.contiguous else "channels_last",
        "compile": args.compile,
        "quick": quick,
        "threads": torch.get_num_threads(),
        "colour_data": "cifar" if args.cifar else "synthetic",
        "seg_data": "given" if args.seg_data else "synthetic",
    }
    print(json.dumps(header), flush=True)
    seconds = {}
    if "colour" in args.only:
        seconds.update(bench_colour(args, device))
    if "segmentation" in args.only:
        seconds.update(bench_segmentation(args, device))
    if args.json:
        args.json.write_text(
            json.dumps({**header, "seconds": {k: round(v, 2) for k, v in seconds.items()}}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
