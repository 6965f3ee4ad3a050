"""colorseg's heads and rembg's U²-Net-p side by side, on the same photos with the same metric code.

    python benchmarks/seg_vs_u2netp.py DATA [--weights-dir weights] [--split val] [--single-view]

DATA holds davis2016/, oxford17flowers/ and weizmann_horse_db/ (those present are scored; needs
requirements-baseline.txt). For each source: its task's two heads (objects on DAVIS, flowers on
flowers, horses on horses) and U²-Net-p, every photo at its mask's own resolution
(colorseg.segmentation.inference.image_metrics, the one scorer of the evaluation CLI), then for DAVIS
each sequence on its own. Prints a Markdown table per source: thresholded mIoU / IoU / pixel accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorseg.paths import DEFAULT_WEIGHTS_DIR  # noqa: E402
from colorseg.segmentation.baseline import U2NetP  # noqa: E402
from colorseg.segmentation.data import load_samples  # noqa: E402
from colorseg.segmentation.inference import image_metrics, load_segmenter, mean_metrics  # noqa: E402
from colorseg.segmentation.losses import SEG_LOSSES  # noqa: E402
from colorseg.segmentation.sources import DEFAULT_SOURCES  # noqa: E402

TASKS = {"davis": "objects", "flowers": "flowers", "horses": "horses"}


def cell(metrics: dict[str, float]) -> str:
    return f"{metrics['miou_thresholded']:.3f} / {metrics['iou']:.3f} / {metrics['pixel_accuracy']:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR)
    parser.add_argument("--split", choices=("all", "val"), default="val")
    parser.add_argument("--single-view", action="store_true", help="the heads on the photo alone (no mirror)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    segmenter = load_segmenter(args.weights_dir, flip_average=False if args.single_view else None)
    u2netp = U2NetP(threads=args.threads)
    for source, folder in DEFAULT_SOURCES.items():
        if not (args.data / folder).is_dir():
            continue
        task, samples = TASKS[source], load_samples(args.data / folder, args.split)
        rows: dict[str, dict[str, list[dict[str, float]]]] = {}
        with torch.inference_mode():
            for sample in samples:
                group = sample.name.split("/")[0] if source == "davis" else "all"
                probs = segmenter.probabilities(sample.image, tasks=(task,))[task]
                scored = {loss: image_metrics(probs[loss], sample.mask) for loss in SEG_LOSSES}
                scored["u2netp"] = image_metrics(u2netp.probability(sample.image), sample.mask)
                for name in (group, "all") if group != "all" else ("all",):
                    for model, metrics in scored.items():
                        rows.setdefault(name, {}).setdefault(model, []).append(metrics)
        print(f"\n{source} ({task} heads), {args.split} split, {len(samples)} photos")
        print("| photos | cross-entropy head | soft-IoU head | U²-Net-p |\n|---|---|---|---|")
        for name, by_model in sorted(rows.items(), key=lambda item: item[0] != "all"):
            count = len(by_model["u2netp"])
            print(
                f"| {name} ({count}) | "
                + " | ".join(cell(mean_metrics(by_model[m])) for m in (*SEG_LOSSES, "u2netp"))
                + " |"
            )


if __name__ == "__main__":
    main()
