"""The segmentation part of ``train_all.py``: body (from scratch or pretrained), both heads,
weights, curves and a JSON-able report.

Order of work: load the data as tensors -> get the body (train it whole from scratch, then
recompute its BatchNorm statistics; or take torchvision's COCO one) -> round it to the
stored float16 precision -> cache its features -> train the cross-entropy and the soft-IoU
heads on them -> choose the inference size on the training photos -> score both heads on
the validation photos at their own resolution -> only then write body and heads, so an
interrupted run leaves the previous weights untouched.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from colorseg import seg_data, seg_losses, seg_train, weights_io
from colorseg.cifar import DataError
from colorseg.seg_models import (
    BACKBONES,
    DEFAULT_BACKBONE,
    SOURCES,
    DeepLabV3Body,
    DeepLabV3Head,
    SegmentationNet,
    build_body,
)
from colorseg.segment import HEAD_NAMES, Segmenter, evaluate_samples

REPO_ROOT = Path(__file__).resolve().parent.parent
WEIZMANN_DIR = REPO_ROOT.parent / "shared" / "data" / "weizmann_horse_db"
REGENERATE = "python train_all.py --only segmentation"
# Inference sizes tried, as multiples of the training size. Training sees random windows of
# 0.6-1.2 times the image (0.9 on average) at the training size, so objects look larger than
# in a whole photo at that size; a somewhat larger inference size undoes that ("FixRes",
# Touvron et al. 2019). The largest, 10/7, keeps a 224 px body's map at 20 cells, below the
# 24 at which the never-trained rate-24 ASPP taps would start to read real features.
WORKING_SIZE_FACTORS = (1.0, 8 / 7, 9 / 7, 10 / 7)
BODY_PLOT = "seg_body_curves.png"
HEADS_PLOT = "seg_heads_curves.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    body = seg_train.BodyRecipe()
    group = parser.add_argument_group("segmentation (Part D)")
    group.add_argument(
        "--seg-data", type=Path, default=WEIZMANN_DIR if WEIZMANN_DIR.is_dir() else None,
        help="folder of photos + binary masks (rgb/ + figure_ground/, images/ + masks/, or Oxford 17 "
        "Flowers jpg/ + trimaps/ + datasplits.mat) (default: ../shared/data/weizmann_horse_db if present)",
    )
    group.add_argument("--seg-download", action="store_true", help="download Oxford 17 Flowers into --seg-data if missing")
    group.add_argument(
        "--seg-source", choices=SOURCES, default="scratch",
        help="body: train DeepLabV3 from scratch on --seg-data, or torchvision's COCO-pretrained one (needs a network)",
    )
    group.add_argument("--seg-backbone", choices=sorted(BACKBONES), default=DEFAULT_BACKBONE)
    group.add_argument("--seg-image-size", type=int, default=224, help="side of the square training images (px)")
    group.add_argument("--seg-epochs", type=int, default=body.epochs, help="body epochs (scratch source)")
    group.add_argument("--seg-batch-size", type=int, default=body.batch_size, help="body batch size (scratch source)")
    group.add_argument(
        "--seg-small-fraction", type=float, default=body.small_fraction,
        help="fraction of the body epochs, at the start, trained on --seg-small-size px images (progressive resizing)",
    )
    group.add_argument("--seg-small-size", type=int, default=body.small_size)
    group.add_argument("--seg-lr", type=float, default=body.lr, help="body peak learning rate (one-cycle AdamW)")
    group.add_argument("--seg-body-loss", choices=sorted(seg_losses.LOSSES), default=body.loss)
    group.add_argument("--seg-eval-every", type=int, default=body.eval_every, help="body epochs between validation scores")
    group.add_argument(
        "--seg-head-recipe", choices=sorted(seg_train.HEAD_RECIPES), default="default",
        help="head training: the assignment's (Adam lr 0.05, batch 128, 10 epochs) or colorseg's measured default",
    )
    group.add_argument("--seg-seed", type=int, default=0)
    group.add_argument("--seg-threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")


@contextmanager
def _stage(name: str, cpu: dict[str, float], wall: dict[str, float]):
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    yield
    cpu[name] = round(time.process_time() - cpu_start, 1)
    wall[name] = round(time.perf_counter() - wall_start, 1)


def _round_to_float16(module: torch.nn.Module) -> bool:
    """Round floating-point tensors to float16 precision in place, so that what is scored
    and what heads train on is exactly what gets stored; False (nothing changed) if some
    value would overflow float16."""
    state = module.state_dict()
    rounded = {k: v.half().to(v.dtype) if v.is_floating_point() else v for k, v in state.items()}
    if not all(torch.isfinite(v).all() for v in rounded.values() if v.is_floating_point()):
        return False
    module.load_state_dict(rounded)
    return True


def _choose_working_size(
    body: torch.nn.Module, heads: dict, size: int, samples: list[seg_data.Sample], device: torch.device
) -> tuple[int, dict[int, dict]]:
    """The inference size with the best IoU (mean of both heads) on the *training* photos,
    so that the validation split stays untouched; returns it and every candidate's scores."""
    candidates = sorted({max(16, round(size * factor / 16) * 16) for factor in WORKING_SIZE_FACTORS})
    scores = {}
    for candidate in candidates:
        scores[candidate] = evaluate_samples(Segmenter(body, heads, candidate, {}, device), samples)
    best = max(candidates, key=lambda c: sum(metrics["iou"] for metrics in scores[c].values()))
    return best, scores


def _plot_curves(report_dir: Path, body_history: list[dict], head_histories: dict[str, list[dict]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if body_history:
        fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(10, 4))
        loss_ax.plot([r["epoch"] for r in body_history], [r["train_loss"] for r in body_history], label="train")
        scored = [r for r in body_history if "val_iou" in r]
        loss_ax.plot([r["epoch"] for r in scored], [r["val_loss"] for r in scored], "o-", label="validation")
        loss_ax.set(title="body (from scratch): loss", xlabel="epoch")
        loss_ax.legend()
        for key, label in (("val_iou", "IoU"), ("val_miou_thresholded", "thresholded mIoU")):
            iou_ax.plot([r["epoch"] for r in scored], [r[key] for r in scored], "o-", label=label)
        iou_ax.set(title="body: validation", xlabel="epoch", ylim=(0, 1))
        iou_ax.legend()
        fig.tight_layout()
        fig.savefig(report_dir / BODY_PLOT, dpi=100)
        plt.close(fig)
        written.append(BODY_PLOT)
    fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, history in head_histories.items():
        epochs = [r["epoch"] for r in history]
        loss_ax.plot(epochs, [r["train_loss"] for r in history], label=f"{name} train")
        loss_ax.plot(epochs, [r["val_loss"] for r in history], "--", label=f"{name} validation")
        iou_ax.plot(epochs, [r["val_iou"] for r in history], label=f"{name} IoU")
        iou_ax.plot(epochs, [r["val_miou_thresholded"] for r in history], "--", label=f"{name} thresholded mIoU")
    loss_ax.set(title="heads on cached features: loss", xlabel="epoch")
    iou_ax.set(title="heads: validation", xlabel="epoch", ylim=(0, 1))
    loss_ax.legend()
    iou_ax.legend()
    fig.tight_layout()
    fig.savefig(report_dir / HEADS_PLOT, dpi=100)
    plt.close(fig)
    return [*written, HEADS_PLOT]


def run(args: argparse.Namespace, weights_dir: Path, report_dir: Path, device: torch.device) -> dict[str, Any]:
    """Train body (scratch source) and both heads, save them, plot curves; returns the
    training report's section, ``{"segmentation": {...}}``."""
    if args.seg_data is None:
        raise DataError("no segmentation data: pass --seg-data DIR (photos with binary masks)")
    if args.seg_threads > 0:
        torch.set_num_threads(args.seg_threads)
    torch.manual_seed(args.seg_seed)
    device = torch.device(device)
    size = args.seg_image_size
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}

    with _stage("data", cpu, wall):
        if args.seg_download:
            seg_data.prepare_oxford17(args.seg_data, download=True)
        layout, _ = seg_data.find_pairs(args.seg_data)
        train_samples = seg_data.load_samples(args.seg_data, "train")
        train = seg_data.samples_to_tensors(train_samples, size).to(device)
        val_samples = seg_data.load_samples(args.seg_data, "val")
        val = seg_data.samples_to_tensors(val_samples, size).to(device)
    data = {
        "dir": str(args.seg_data), "layout": layout,
        "train_images": len(train.names), "val_images": len(val.names),
        "split": seg_data.SPLIT_RULES[layout],
    }

    body_recipe = seg_train.BodyRecipe(
        epochs=args.seg_epochs, batch_size=args.seg_batch_size, lr=args.seg_lr, loss=args.seg_body_loss,
        eval_every=args.seg_eval_every, small_size=args.seg_small_size, small_fraction=args.seg_small_fraction,
    )
    body_history: list[dict] = []
    with _stage("body", cpu, wall):
        if args.seg_source == "scratch":
            net = SegmentationNet(DeepLabV3Body(args.seg_backbone), DeepLabV3Head()).to(device)
            body_history = seg_train.train_body(
                net, train, val, body_recipe,
                generator=torch.Generator().manual_seed(args.seg_seed),
                augment_generator=torch.Generator(device=device).manual_seed(args.seg_seed + 1),
            )
            body = net.body
        else:
            body = build_body(args.seg_backbone, "pretrained").to(device)
        body_dtype = torch.float16 if _round_to_float16(body) else None

    head_recipe = seg_train.HEAD_RECIPES[args.seg_head_recipe]
    with _stage("features", cpu, wall):
        train_features = seg_train.compute_features(body, train.images, body_recipe.batch_size)
        val_features = seg_train.compute_features(body, val.images, body_recipe.batch_size)
    heads, head_histories = {}, {}
    for name in HEAD_NAMES:
        with _stage(f"head_{name}", cpu, wall):
            heads[name], head_histories[name] = seg_train.train_head(
                name, train_features, train.masks, val_features, val.masks, head_recipe,
                generator=torch.Generator().manual_seed(args.seg_seed),
            )
    with _stage("working_size", cpu, wall):
        working_size, working_size_scores = _choose_working_size(body, heads, size, train_samples, device)
    with _stage("evaluate", cpu, wall):
        metrics = evaluate_samples(Segmenter(body, heads, working_size, {}, device), val_samples)

    plots = _plot_curves(Path(report_dir), body_history, head_histories)
    common = {
        "data": data,
        "image_size": size,
        # train_all.py sets args.command (quoted argv); otherwise the running command line.
        "command": getattr(args, "command", None) or weights_io.command_line(),
        "regenerate": REGENERATE,
        "seed": args.seg_seed,
    }
    body_metadata = {
        **common,
        "source": args.seg_source,
        "backbone": args.seg_backbone,
        "recipe": body_recipe.to_dict() if args.seg_source == "scratch" else "torchvision COCO_WITH_VOC_LABELS_V1",
        # Scores of the temporary head trained along with the body, at the training size.
        "metrics": {"val_at_training_size": body_history[-1]} if body_history else {},
        "history": body_history,
        "working_size": working_size,
        # Both heads' scores on the training photos at each candidate inference size.
        "working_size_scores_train": {str(k): v for k, v in working_size_scores.items()},
        # process_time counts every thread: with 2 threads it is about twice the wall time.
        "cpu_seconds": {key: cpu[key] for key in ("data", "body", "working_size")},
        "wall_seconds": {key: wall[key] for key in ("data", "body", "working_size")},
    }
    body_path = weights_io.save_module(
        body, weights_dir, weights_io.SEG_BODY_STEM, architecture="DeepLabV3Body",
        constructor={"backbone": args.seg_backbone}, metadata=body_metadata, dtype=body_dtype,
    )
    body_sha256 = weights_io.sha256_of(body_path)
    for name, head in heads.items():
        weights_io.save_module(
            head, weights_dir, weights_io.SEG_HEAD_STEMS[name], architecture="DeepLabV3Head", constructor={},
            metadata={
                **common,
                "loss": name,
                "body_sha256": body_sha256,
                "body_source": args.seg_source,
                "recipe": {"name": args.seg_head_recipe, **head_recipe.to_dict()},
                # At each validation photo's own (mask) resolution, as colorseg.evaluate scores,
                # with the body run at working_size.
                "metrics": {"val": metrics[name]},
                "history": head_histories[name],
                "cpu_seconds": {key: cpu[key] for key in ("features", f"head_{name}")},
                "wall_seconds": {key: wall[key] for key in ("features", f"head_{name}")},
            },
        )
    return {"segmentation": {
        "settings": {
            "source": args.seg_source, "backbone": args.seg_backbone, "image_size": size,
            "working_size": working_size,
            "body_recipe": body_recipe.to_dict() if args.seg_source == "scratch" else None,
            "head_recipe": {"name": args.seg_head_recipe, **head_recipe.to_dict()},
            "seed": args.seg_seed, "threads": torch.get_num_threads(), "device": str(device),
            "body_stored_dtype": "float16" if body_dtype else "float32",
        },
        "data": data,
        "metrics": {
            "val": metrics,
            "body_val_at_training_size": body_history[-1] if body_history else None,
            "train_by_working_size": {str(k): v for k, v in working_size_scores.items()},
        },
        "cpu_seconds": {**cpu, "total": round(sum(cpu.values()), 1)},
        "wall_seconds": {**wall, "total": round(sum(wall.values()), 1)},
        "weights": [weights_io.SEG_BODY_STEM, *weights_io.SEG_HEAD_STEMS.values()],
        "plots": plots,
    }}
