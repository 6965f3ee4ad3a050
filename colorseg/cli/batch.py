"""Whole folders at once, with the app's own inference:

    python -m colorseg colorize IN_DIR OUT_DIR [--nets UNet ...] [--working-size N]
        [--decoding argmax|annealed-mean] [--temperature T] [--weights-dir D] [--overwrite]
    python -m colorseg segment IN_DIR OUT_DIR [--task objects|flowers|horses] [--weights-dir D] [--overwrite]

colorize writes ``<stem>_<net>.png`` at each input's resolution; segment writes
``<stem>_<head>_mask.png`` (white = object) and ``<stem>_<head>_cutout.png`` (RGBA, transparent
outside the mask) for both heads. Inputs larger than 4096 px on their longest side are processed,
and written, at 4096 px. Every file in IN_DIR is tried (not sub-folders or hidden files); one that
cannot be read is skipped and listed at the end. Existing outputs are kept unless --overwrite.
OUT_DIR may be IN_DIR: files there named like this command's outputs of another input are then
not inputs. A file that cannot be written stops the run (the next would fail alike); Ctrl-C stops
it after the file being written. Exit status: 0 all done, 1 some inputs failed, 2 usage, weights or
write error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from colorseg.colour import inference as colourizing
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.errors import WeightsError
from colorseg.files import save_png
from colorseg.image_io import MAX_SIDE, ImageLoadError, load_image
from colorseg.paths import DEFAULT_WEIGHTS_DIR
from colorseg.segmentation.explain import cutout_rgba
from colorseg.segmentation.losses import SEG_LOSSES
from colorseg.segmentation.sources import SEG_TASKS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DECODINGS = {"annealed-mean": "annealed mean", "argmax": "argmax"}  # shell-friendly names
HEADS = SEG_LOSSES

# (stem, rgb, names wanted) -> {output file name: picture}
Maker = Callable[[str, np.ndarray, set[str]], dict[str, np.ndarray]]
# stem -> the file names a run writes for it
Outputs = Callable[[str], list[str]]
CAP_HELP = f"Inputs larger than {MAX_SIDE} px on their longest side are processed, and written, at {MAX_SIDE} px."


class UsageError(Exception):
    """Bad folders or weights: reported in one line, exit status 2."""


@dataclass
class Outcome:
    written: int = 0
    skipped: list[str] = field(default_factory=list)  # output names kept because they existed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input name, why)
    earlier_outputs: int = 0  # files in IN_DIR = OUT_DIR that an earlier run wrote
    stopped: str | None = None  # why the run ended early: a write error (or None)
    interrupted: bool = False


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


def earlier_outputs(files: list[Path], out_dir: Path, outputs: Outputs) -> set[Path]:
    """The files among ``files`` that a run writes for another of them, when ``out_dir`` is their folder:
    with OUT_DIR = IN_DIR a second run would otherwise take its own results for photos."""
    folders = {path.parent for path in files}
    if not any(out_dir.resolve() == folder.resolve() for folder in folders):
        return set()
    names = {name for path in files for name in outputs(path.stem)}
    return {path for path in files if path.name in names}


def process(
    files: list[Path], out_dir: Path, outputs: Outputs, make: Maker, overwrite: bool, all_outputs: Outputs | None = None
) -> Outcome:
    """Run ``make`` on every readable file, writing the outputs it is due; never raises for one bad
    file. ``all_outputs`` (default ``outputs``) names whatever any run of the command writes for a
    stem: such files are not inputs when ``out_dir`` is their folder."""
    outcome, stems = Outcome(), {}
    leave_out = earlier_outputs(files, out_dir, all_outputs or outputs)
    outcome.earlier_outputs = len(leave_out)
    try:
        for path in tqdm([f for f in files if f not in leave_out], file=sys.stderr, unit="image", desc="images"):
            if path.stem in stems:  # a.jpg and a.png would write the same outputs
                outcome.failed.append((path.name, f"its outputs would replace those of {stems[path.stem]}"))
                continue
            names = outputs(path.stem)
            due = {name for name in names if overwrite or not (out_dir / name).exists()}
            kept = [name for name in names if name not in due]
            if kept:
                outcome.skipped += kept
                tqdm.write(f"kept existing {', '.join(kept)} (use --overwrite to replace)", file=sys.stderr)
            if due:
                try:
                    pictures = make(path.stem, load_image(path).rgb, due)
                except ImageLoadError as error:
                    outcome.failed.append((path.name, str(error)))
                    continue  # its stem stays free: a.png may still write a_*.png
                except (RuntimeError, ValueError) as error:  # the model refused this image (e.g. too small)
                    outcome.failed.append((path.name, f"inference failed ({error})"))
                    continue
            stems[path.stem] = path.name  # these outputs are now this input's
            for name in names:
                if name in due:
                    try:
                        save_png(pictures[name], out_dir / name)
                    except OSError as error:
                        outcome.stopped = f"cannot write {name} in {out_dir} ({error.strerror or error})"
                        return outcome
                    outcome.written += 1
    except KeyboardInterrupt:  # the file being written is whole or absent: writes are atomic
        outcome.interrupted = True
    return outcome


def _report(outcome: Outcome, out_dir: Path) -> int:
    print(f"{outcome.written} file(s) written to {out_dir}", file=sys.stderr)
    if outcome.earlier_outputs:
        print(f"{outcome.earlier_outputs} earlier output(s) in the folder left out as inputs", file=sys.stderr)
    if outcome.skipped:
        print(f"{len(outcome.skipped)} existing file(s) kept; --overwrite replaces them", file=sys.stderr)
    if outcome.failed:
        print(f"{len(outcome.failed)} input(s) skipped:", file=sys.stderr)
        for name, why in outcome.failed:
            print(f"  {name}: {why}", file=sys.stderr)
    if outcome.interrupted:
        print("interrupted: the files listed as written are complete, the rest were not started", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.stopped:
        print(f"error: {outcome.stopped}; stopped", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_FAILED if outcome.failed else EXIT_OK


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder of images")
    parser.add_argument(
        "out_dir",
        type=Path,
        metavar="OUT_DIR",
        help="folder for the results (created if missing); may be IN_DIR: its earlier results are then not inputs",
    )
    parser.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR, help="default: %(default)s")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    parser.description = f"{parser.description} {CAP_HELP}"


def _interruptible(main: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """Ctrl-C before :func:`process` starts (while the weights load) ends in one line, not a traceback."""

    @functools.wraps(main)
    def run(argv: list[str]) -> int:
        try:
            return main(argv)
        except KeyboardInterrupt:
            print("interrupted: nothing was written", file=sys.stderr)
            return EXIT_INTERRUPTED

    return run


def _colourize_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m colorseg colorize", description="Colourize every image in a folder."
    )
    _common(parser)
    parser.add_argument("--nets", nargs="+", choices=COLOUR_MODEL_NAMES, default=list(COLOUR_MODEL_NAMES))
    parser.add_argument(
        "--working-size",
        type=int,
        default=colourizing.DEFAULT_WORKING_SIZE,
        help="longest side the nets see (default %(default)s)",
    )
    parser.add_argument("--decoding", choices=DECODINGS, default="annealed-mean")
    parser.add_argument(
        "--temperature",
        type=float,
        default=colourizing.DEFAULT_TEMPERATURE,
        help="annealed-mean temperature (default %(default)s)",
    )
    return parser


@_interruptible
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
        results = colourizing.colourize(
            models, colourizing.greyscale(rgb), wanted, args.working_size, DECODINGS[args.decoding], args.temperature
        )
        return {f"{stem}_{net}.png": result.rgb for net, result in results.items()}

    outcome = process(
        files,
        out_dir,
        lambda stem: [f"{stem}_{net}.png" for net in nets],
        make,
        args.overwrite,
        all_outputs=lambda stem: [f"{stem}_{net}.png" for net in COLOUR_MODEL_NAMES],
    )
    return _report(outcome, out_dir)


@_interruptible
def segment_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorseg segment", description="Segment every image in a folder.")
    _common(parser)
    parser.add_argument("--task", choices=SEG_TASKS, default=SEG_TASKS[0], help="which heads (default %(default)s)")
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
