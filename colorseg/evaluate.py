"""Score the committed weights on a data folder; prints exactly one JSON object to stdout.

    python -m colorseg.evaluate colour DATA_DIR
    python -m colorseg.evaluate segment DATA_DIR [--task objects|flowers|horses] [--split all|val]

colour: DATA_DIR is a cifar-10-batches-py folder (or its parent) or an image-folder dump
{train,test}/horse/; the test split is scored against the palette stored with the weights.
Output: {"PoolUpsampleNet": {"loss": ..., "accuracy": ...}, "ConvTransposeNet": ..., "UNet": ...}
with loss the mean per-pixel cross-entropy and accuracy the fraction of pixels whose argmax
colour is the target colour. Progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from colorseg.cifar import DataError, load_horses, to_grey
from colorseg.colour_train import evaluate
from colorseg.palette import label_images, load_palette
from colorseg.weights_io import COLOUR_STEMS, DEFAULT_WEIGHTS_DIR, WeightsError, load_module


def evaluate_colour(data_dir: Path, weights_dir: Path = DEFAULT_WEIGHTS_DIR, device: str = "cpu") -> dict:
    palette = load_palette(weights_dir)
    test = load_horses(data_dir).test
    grey, labels = to_grey(test).to(device), label_images(test, palette).to(device)
    print(f"scoring {len(test)} test images from {data_dir}", file=sys.stderr)
    results = {}
    for name, stem in COLOUR_STEMS.items():
        model, _ = load_module(weights_dir, stem, device)
        results[name] = evaluate(model, grey, labels)
        print(f"{name}: {results[name]}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorseg.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=("colour", "segment"))
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--split", choices=("all", "val"), default="all", help="segment: every image, or the validation split")
    parser.add_argument("--task", default="objects", help="segment: whose two heads to score (objects, flowers, horses)")
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        if args.task == "colour":
            results = evaluate_colour(args.data_dir, args.weights_dir, args.device)
        else:
            from colorseg.segment import evaluate_folder

            results = evaluate_folder(args.data_dir, split=args.split, task=args.task, weights_dir=args.weights_dir, device=args.device)
    except (DataError, WeightsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    with torch.inference_mode():
        sys.exit(main())
