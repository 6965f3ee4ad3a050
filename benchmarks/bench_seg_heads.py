"""Time Part D's head training: 10 epochs of both heads on cached body features against
10 epochs of the assignment's end-to-end loop (frozen body run on every batch), same data.

    python benchmarks/bench_seg_heads.py [--data DIR] [--images 64] [--size 224] [--threads 1]

The cached path's time includes computing the features once. The end-to-end loop trains
one head, as each of the assignment's runs (D.1, D.2) does; both paths keep the body in eval
mode, so they compute the same losses (tests/segmentation/test_train.py checks that).
One run each; the ratio must be at least 5.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorseg.paths import data_root  # noqa: E402
from colorseg.segmentation import data as seg_data  # noqa: E402
from colorseg.segmentation import heads as seg_heads  # noqa: E402
from colorseg.segmentation import losses as seg_losses  # noqa: E402
from colorseg.segmentation import train as seg_train  # noqa: E402
from colorseg.segmentation.inference import SEG_LOSSES  # noqa: E402
from colorseg.segmentation.models import DeepLabV3Body, DeepLabV3Head, SegmentationNet, freeze_body  # noqa: E402
from colorseg.segmentation.sources import DEFAULT_SOURCES  # noqa: E402
from colorseg.training import train_one_epoch  # noqa: E402

ASSIGNMENT = seg_heads.HEAD_RECIPES["assignment"]
WEIZMANN_DIR = data_root() / DEFAULT_SOURCES["horses"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=WEIZMANN_DIR if WEIZMANN_DIR.is_dir() else None,
        help="photos + masks folder (default: $COLORSEG_DATA/weizmann_horse_db; random images if absent)",
    )
    parser.add_argument("--images", type=int, default=64, help="training images used by both paths")
    parser.add_argument("--size", type=int, default=224, help="image side (px)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.data is not None:
        data = seg_data.load_split_tensors(args.data, "train", args.size)
        images, masks = data.images[: args.images], data.masks[: args.images]
        source = str(args.data)
    else:
        images = torch.randint(0, 256, (args.images, 3, args.size, args.size), dtype=torch.uint8)
        masks = torch.rand(args.images, args.size, args.size) > 0.75
        source = "random images"
    body = DeepLabV3Body().eval()  # timing does not depend on the weights
    print(
        f"{len(images)} images of {args.size} px from {source}; {args.threads} thread(s); "
        f"recipe: Adam lr {ASSIGNMENT.lr}, batch {ASSIGNMENT.batch_size}, {ASSIGNMENT.epochs} epochs"
    )

    start = time.perf_counter()
    features = seg_heads.compute_features(body, images, batch_size=16)
    for loss_name in SEG_LOSSES:
        seg_heads.train_head(loss_name, features, masks, None, None, ASSIGNMENT, torch.Generator().manual_seed(0))
    cached = time.perf_counter() - start
    print(f"cached features, both heads:     {cached:8.1f} s")

    start = time.perf_counter()
    net = SegmentationNet(body, DeepLabV3Head())
    optimizer = torch.optim.Adam(freeze_body(net), lr=ASSIGNMENT.lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(ASSIGNMENT.epochs):
        train_one_epoch(
            net,
            optimizer,
            seg_losses.cross_entropy_loss,
            images,
            masks,
            batch_size=ASSIGNMENT.batch_size,
            generator=generator,
            prepare=seg_train.plain_images,
        )
    end_to_end = time.perf_counter() - start
    print(f"end-to-end frozen loop, one head: {end_to_end:8.1f} s")
    ratio = end_to_end / cached
    print(f"speed-up: {ratio:.1f}x ({'meets' if ratio >= 5 else 'MISSES'} the 5x target)")


if __name__ == "__main__":
    main()
