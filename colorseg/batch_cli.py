"""Whole folders at once, with the app's own inference:

    python -m colorseg colorize IN_DIR OUT_DIR [--nets UNet ...] [--working-size N]
        [--decoding argmax|annealed-mean] [--temperature T] [--weights-dir D] [--overwrite]
    python -m colorseg segment IN_DIR OUT_DIR [--task objects|flowers|horses] [--weights-dir D] [--overwrite]

colorize writes ``<stem>_<net>.png`` at each input's resolution; segment writes
``<stem>_<head>_mask.png`` (white = object) and ``<stem>_<head>_cutout.png`` (RGBA, transparent
outside the mask) for both heads. Every file in IN_DIR is tried (not sub-folders or hidden
files); one that cannot be read is skipped and listed at the end. Existing outputs are kept
unless --overwrite. Exit status: 0 all done, 1 some inputs failed, 2 usage or weights error.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from colorseg.colour import inference as colourizing
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.errors import WeightsError
from colorseg.image_io import ImageLoadError, load_image
from colorseg.paths import DEFAULT_WEIGHTS_DIR
from colorseg.pictures import save_png
from colorseg.segmentation.explain import cutout_rgba
from colorseg.weights_io import SEG_LOSSES, SEG_TASKS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DECODINGS = {"annealed-mean": "annealed mean", "argmax": "argmax"}  # shell-friendly names
HEADS = SEG_LOSSES  # = segment.HEAD_NAMES, without importing torchvision before it is needed

# (stem, rgb, names wanted) -> {output file name: picture}
Maker = Callable[[str, np.ndarray, set[str]], dict[str, np.ndarray]]


class UsageError(Exception):
    """Bad folders or weights: reported in one line, exit status 2."""


@dataclass
class Outcome:
    written: int = 0
    skipped: list[str] = field(default_factory=list)  # output names kept because they existed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input name, why)


def _inputs(in_dir: Path) -> list[Path]:
    if not in_dir.is_dir():
        raise UsageError(f"input folder {in_dir} does not exist or is not a folder")
    return sorted(p for p in in_dir.iterdir() if p.is_file() and not p.name.startswith("."))


def _output_dir(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot use {out_dir} as the output folder ({error.strerror or error})") from None
    return out_dir


def process(
    files: list[Path], out_dir: Path, outputs: Callable[[str], list[str]], make: Maker, overwrite: bool
) -> Outcome:
    """Run ``make`` on every readable file, writing the outputs it is due; never raises for one bad file."""
    outcome, stems = Outcome(), {}
    for path in tqdm(files, file=sys.stderr, unit="image", desc="images"):
        if path.stem in stems:  # a.jpg and a.png would write the same outputs
            outcome.failed.append((path.name, f"its outputs would replace those of {stems[path.stem]}"))
            continue
        stems[path.stem] = path.name
        names = outputs(path.stem)
        due = {name for name in names if overwrite or not (out_dir / name).exists()}
        kept = [name for name in names if name not in due]
        if kept:
            outcome.skipped += kept
            tqdm.write(f"kept existing {', '.join(kept)} (use --overwrite to replace)", file=sys.stderr)
        if not due:
            continue
        try:
            pictures = make(path.stem, load_image(path).rgb, due)
        except ImageLoadError as error:
            outcome.failed.append((path.name, str(error)))
            continue
        except (RuntimeError, ValueError) as error:  # the model refused this image (e.g. too small)
            outcome.failed.append((path.name, f"inference failed ({error})"))
            continue
        for name in names:
            if name in due:
                save_png(pictures[name], out_dir / name)
                outcome.written += 1
    return outcome


def _report(outcome: Outcome, out_dir: Path) -> int:
    print(f"{outcome.written} file(s) written to {out_dir}", file=sys.stderr)
    if outcome.skipped:
        print(f"{len(outcome.skipped)} existing file(s) kept; --overwrite replaces them", file=sys.stderr)
    if outcome.failed:
        print(f"{len(outcome.failed)} input(s) skipped:", file=sys.stderr)
        for name, why in outcome.failed:
            print(f"  {name}: {why}", file=sys.stderr)
    return EXIT_FAILED if outcome.failed else EXIT_OK


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder of images")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder for the results (created if missing)")
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR, help="default: %(default)s")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")


def _colourize_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m colorseg colorize", description="Colourize every image in a folder."
    )
    _common(parser)
    parser.add_argument("--nets", nargs="+", choices=COLOUR_MODEL_NAMES, default=list(COLOUR_MODEL_NAMES))
    parser.add_argument("--working-size", type=int, default=colourizing.DEFAULT_WORKING_SIZE,
                        help="longest side the nets see (default %(default)s)")
    parser.add_argument("--decoding", choices=DECODINGS, default="annealed-mean")
    parser.add_argument("--temperature", type=float, default=colourizing.DEFAULT_TEMPERATURE,
                        help="annealed-mean temperature (default %(default)s)")
    return parser


def colourize_main(argv: list[str]) -> int:
    parser = _colourize_parser()
    args = parser.parse_args(argv)
    if not colourizing.MIN_WORKING_SIZE <= args.working_size <= colourizing.MAX_WORKING_SIZE:
        parser.error(f"--working-size must be {colourizing.MIN_WORKING_SIZE}-{colourizing.MAX_WORKING_SIZE}")
    if args.temperature <= 0:
        parser.error("--temperature must be positive")
    nets = list(dict.fromkeys(args.nets))
    try:
        files = _inputs(args.in_dir)
        models = colourizing.load_colourizers(args.weights_dir, names=tuple(nets))
        if models.problems:
            raise UsageError(next(iter(models.problems.values())))
        out_dir = _output_dir(args.out_dir)  # only once there is something to write into it
    except (UsageError, WeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    def make(stem: str, rgb: np.ndarray, due: set[str]) -> dict[str, np.ndarray]:
        wanted = [net for net in nets if f"{stem}_{net}.png" in due]
        # Exactly the app's path (app.Handlers.colorize): the mean-of-RGB grey, then colourize.
        results = colourizing.colourize(models, colourizing.greyscale(rgb), wanted, args.working_size,
                                        DECODINGS[args.decoding], args.temperature)
        return {f"{stem}_{net}.png": result.rgb for net, result in results.items()}

    outcome = process(files, out_dir, lambda stem: [f"{stem}_{net}.png" for net in nets], make, args.overwrite)
    return _report(outcome, out_dir)


def segment_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorseg segment", description="Segment every image in a folder.")
    _common(parser)
    parser.add_argument("--task", choices=SEG_TASKS, default="objects", help="which heads (default %(default)s)")
    args = parser.parse_args(argv)
    from colorseg.segmentation.inference import load_segmenter  # torchvision: loaded only when segmenting

    try:
        files = _inputs(args.in_dir)
        segmenter = load_segmenter(args.weights_dir)
        if args.task not in segmenter.tasks:
            raise UsageError(
                f"no heads for task {args.task!r} in {args.weights_dir}; it has: {', '.join(segmenter.tasks)}"
            )
        out_dir = _output_dir(args.out_dir)
    except (UsageError, WeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    def make(stem: str, rgb: np.ndarray, due: set[str]) -> dict[str, np.ndarray]:
        result = segmenter.predict(rgb, task=args.task)
        pictures = {}
        for head in HEADS:
            mask = np.asarray(getattr(result, f"mask_{head}"), dtype=bool)
            pictures[f"{stem}_{head}_mask.png"] = mask
            pictures[f"{stem}_{head}_cutout.png"] = cutout_rgba(rgb, mask)
        return pictures

    def outputs(stem: str) -> list[str]:
        return [f"{stem}_{head}_{what}.png" for head in HEADS for what in ("mask", "cutout")]

    return _report(process(files, out_dir, outputs, make, args.overwrite), out_dir)
