"""Regenerate every weight in weights/ and the training report in reports/.

    python train_all.py                              # everything, default recipes
    python train_all.py --only colour                # palette + the three colour nets
    python train_all.py --only colour --recipe assignment   # the original recipe (weights to runs/)
    python train_all.py --only colour --batch-sweep  # Question B.5, a table and a plot
    python train_all.py --only segmentation          # DeepLabV3 body (scratch) + both heads

Uses CUDA when present (``--device`` to choose). Weights that belong together (the palette
and the colour nets trained on it) are committed as one set once they have all finished
training (colorseg.weights_io.WeightSet), so a run killed at any instant leaves every model at
its previous weights or at its new ones. Problems (missing data, a damaged teacher, Ctrl-C)
end the run with one line on stderr and a non-zero status: 2 for data or weights, 130 for
Ctrl-C, 1 otherwise; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from colorseg.colour import pipeline as colour_pipeline
from colorseg.errors import DataError, WeightsError
from colorseg.paths import DEFAULT_REPORTS_DIR, DEFAULT_WEIGHTS_DIR, REPO_ROOT
from colorseg.segmentation import pipeline as seg_pipeline
from colorseg.weights_io import atomic_write_json, library_versions, portable_argv

PARTS = ("colour", "segmentation")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="parts to train (default: all)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument(
        "--weights-dir",
        type=Path,
        help="where to write weights (default: weights/ for the default recipe, runs/<recipe>/weights otherwise)",
    )
    parser.add_argument("--report-dir", type=Path, default=DEFAULT_REPORTS_DIR, help="reports and curves (default: reports/)")
    parser.add_argument("--push-to-hub", metavar="REPO", help="after training, upload weights/ to this Hub model repo")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    colour_pipeline.add_arguments(parser)
    seg_pipeline.add_arguments(parser)
    return parser.parse_args(argv)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def resolve_weights_dir(args: argparse.Namespace) -> Path:
    if args.weights_dir is not None:
        return args.weights_dir
    if args.recipe == "default" and not args.batch_sweep:
        return DEFAULT_WEIGHTS_DIR
    # Experiments never overwrite the committed weights unless asked to.
    return REPO_ROOT / "runs" / args.recipe / "weights"


def update_report(path: Path, sections: dict, header: dict) -> None:
    """Merge this run's sections into the running report, so partial runs keep the rest."""
    report = {}
    if path.is_file():
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError:
            report = {}
    report.update(sections)
    report.setdefault("runs", []).append(header)
    atomic_write_json(path, report)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        return _run(args, argv, log)
    except KeyboardInterrupt:
        if args.debug:
            raise
        log("interrupted: nothing from the unfinished part of this run was written; the weights are as they were "
            "before it (or as its finished parts left them). Run the command again to train.")
        return 130
    except (DataError, WeightsError) as error:
        if args.debug:
            raise
        log(f"error: {error}")
        return 2
    except SystemExit as error:
        if args.debug or not isinstance(error.code, str):
            raise
        log(f"error: {error.code}")
        return 2
    except Exception as error:  # noqa: BLE001 - one line, not a traceback, for anything unforeseen
        if args.debug:
            raise
        log(f"error: {type(error).__name__}: {error} (run again with --debug for the traceback)")
        return 1


def _run(args: argparse.Namespace, argv: list[str], log) -> int:
    # Recorded in every weight description and report: the command that regenerates them.
    args.command = shlex.join(["python", "train_all.py", *portable_argv(argv)])
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    weights_dir = resolve_weights_dir(args)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    log(f"device {device}, {torch.get_num_threads()} CPU threads, weights -> {weights_dir}, reports -> {args.report_dir}")

    sections, timings = {}, {}
    for part, pipeline in (("colour", colour_pipeline), ("segmentation", seg_pipeline)):
        if part not in args.only:
            continue
        started = time.perf_counter()
        sections.update(pipeline.run(args, weights_dir, args.report_dir, device))
        timings[part] = round(time.perf_counter() - started, 1)
        log(f"{part} finished in {timings[part]:.0f}s")

    header = {
        "command": args.command,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "seconds": timings,
        "versions": library_versions(),
    }
    update_report(args.report_dir / "training_report.json", sections, header)
    if args.push_to_hub:
        from colorseg.hub import push_weights

        url = push_weights(args.push_to_hub, weights_dir, report_dir=args.report_dir)
        log(f"pushed {weights_dir} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
