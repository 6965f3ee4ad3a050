"""``python -m colorseg train`` (= ``python train_all.py``): regenerate every weight in weights/ and
the training report in reports/.

    python train_all.py                                      # everything, default recipes
    python train_all.py --only colour                        # palette + the three colour nets
    python train_all.py --only colour --colour-recipe assignment   # the original recipe (weights to runs/)
    python train_all.py --only colour --colour-batch-sweep   # Question B.5, a table and a plot
    python train_all.py --only segmentation                  # ImageNet body fine-tuned + every task's heads

One grammar: flags of one part are prefixed with it (``--colour-epochs``, ``--seg-epochs``); flags
of the whole run are not (``--device``, ``--threads``, ``--seed``, ``--weights-dir``, ``--resume``).
Uses CUDA when present (``--device`` to choose). ``--resume`` continues from the checkpoints in
runs/checkpoints/; ``torchrun --standalone --nproc_per_node=N train_all.py ...`` trains both halves
data-parallel (rank 0 writes; on CPU set OMP_NUM_THREADS to cores / N). Weights that belong
together are committed as one set once they have all finished training
(colorseg.weights.sets.WeightSet), so a run killed at any instant leaves every model at its
previous weights or at its new ones. Problems (missing data, a damaged teacher, Ctrl-C) end the
run with one line on stderr (colorseg.cli.run_command).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import torch

from colorseg.cli import run_command
from colorseg.cli.train_flags import (  # noqa: F401  (tests and tools build configs through this module)
    PARTS,
    add_colour_arguments,
    add_segmentation_arguments,
    colour_config,
    segmentation_config,
)
from colorseg.colour import pipeline as colour_pipeline
from colorseg.errors import UsageError
from colorseg.files import atomic_write_json
from colorseg.paths import DEFAULT_REPORTS_DIR, DEFAULT_WEIGHTS_DIR, REPO_ROOT
from colorseg.segmentation import pipeline as seg_pipeline
from colorseg.segmentation.finetune import FineTuneRecipe
from colorseg.segmentation.heads import HEAD_RECIPES
from colorseg.training import Checkpointing, distributed
from colorseg.training.config import RunConfig
from colorseg.training.provenance import library_versions, portable_argv

INTERRUPTED = (
    "interrupted: nothing from the unfinished part of this run was written; the weights are as they were "
    "before it (or as its finished parts left them). Run the command again to train."
)
log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="parts to train (default: all)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of every random draw: initialisation, order, flips, augmentation (default: 0)",
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        help="where to write weights (default: weights/ for the default recipe, runs/<recipe>/weights otherwise)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        help="reports and curves (default: reports/, or reports/ beside an explicit --weights-dir)",
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="after training, upload weights/ to this Hub model repo")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument(
        "--resume", action="store_true", help="continue each training stage from its checkpoint, if any"
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=REPO_ROOT / "runs" / "checkpoints",
        help="resumable checkpoints (default: runs/checkpoints/; never weights/)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=1, help="epochs between checkpoints (default: 1)")
    add_colour_arguments(parser)
    add_segmentation_arguments(parser)
    return parser.parse_args(argv)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def resolve_weights_dir(args: argparse.Namespace) -> Path:
    if args.weights_dir is not None:
        return args.weights_dir
    if args.colour_recipe == "default" and not args.colour_batch_sweep:
        return DEFAULT_WEIGHTS_DIR
    # Experiments never overwrite the committed weights unless asked to.
    return REPO_ROOT / "runs" / args.colour_recipe / "weights"


def resolve_report_dir(args: argparse.Namespace) -> Path:
    if args.report_dir is not None:
        return args.report_dir
    # A run sent elsewhere with --weights-dir must not replace the committed weights' report,
    # curves and replays (the segmentation section is not keyed by recipe as colour's is).
    if args.weights_dir is not None and args.weights_dir.resolve() != DEFAULT_WEIGHTS_DIR.resolve():
        return args.weights_dir.parent / "reports"
    return DEFAULT_REPORTS_DIR


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
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    return run_command(lambda: _run(args, argv), args.debug, INTERRUPTED)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    # Recorded in every weight description and report: the command that regenerates them.
    args.command = shlex.join(["python", "train_all.py", *portable_argv(argv)])
    if args.threads:
        torch.set_num_threads(args.threads)
    resolve_device(args.device)  # a clear error for --device cuda without CUDA
    args.report_dir = resolve_report_dir(args)
    ctx = distributed.setup(args.device)
    try:
        run_config = RunConfig(
            resolve_weights_dir(args),
            args.report_dir,
            ctx.device,
            args.command,
            ctx,
            Checkpointing(args.checkpoint_dir, args.resume, args.checkpoint_every),
        )
        _check_distributed(args, ctx)
        if ctx.is_main:
            args.report_dir.mkdir(parents=True, exist_ok=True)
            log.info(
                f"device {ctx.device} (world size {ctx.world_size}), {torch.get_num_threads()} CPU threads, "
                f"weights -> {run_config.weights_dir}, reports -> {args.report_dir}"
            )
        sections, timings = _train_parts(args, run_config)
        if ctx.is_main:
            _finish(args, run_config, sections, timings)
    finally:
        ctx.cleanup()
    return 0


def _check_distributed(args: argparse.Namespace, ctx: distributed.DistContext) -> None:
    if not ctx.distributed:
        return
    sizes = [args.colour_batch_size or 16, *(args.colour_sweep_sizes or [])]
    if "segmentation" in args.only:
        sizes += [args.seg_batch_size or FineTuneRecipe().batch_size, HEAD_RECIPES[args.seg_head_recipe].batch_size]
    if min(sizes) < ctx.world_size:
        raise UsageError(f"every batch size must be at least the world size ({ctx.world_size})")


def _train_parts(args: argparse.Namespace, run_config: RunConfig) -> tuple[dict, dict]:
    parts = {
        "colour": lambda: colour_pipeline.run(colour_config(args), run_config),
        "segmentation": lambda: seg_pipeline.run(segmentation_config(args), run_config),
    }
    sections, timings = {}, {}
    for part, run_part in parts.items():
        if part not in args.only:
            continue
        started = time.perf_counter()
        sections.update(run_part())
        timings[part] = round(time.perf_counter() - started, 1)
        if run_config.ctx.is_main:
            log.info(f"{part} finished in {timings[part]:.0f}s")
    return sections, timings


def _finish(args: argparse.Namespace, run_config: RunConfig, sections: dict, timings: dict) -> None:
    """Rank 0: the report header, the report, and the Hub upload when asked."""
    header = {
        "command": args.command,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **run_config.hardware(),
        "cpu_threads": torch.get_num_threads(),
        "seconds": timings,
        "versions": library_versions(),
    }
    update_report(args.report_dir / "training_report.json", sections, header)
    if args.push_to_hub:
        from colorseg.deploy.hub import push_weights

        url = push_weights(args.push_to_hub, run_config.weights_dir, report_dir=args.report_dir)
        log.info(f"pushed {run_config.weights_dir} to {url}")
