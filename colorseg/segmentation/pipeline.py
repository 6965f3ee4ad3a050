"""The segmentation part of ``train_all.py``: body (from scratch, pretrained, or reused),
every task's two heads, weights, curves and a JSON-able report.

Order of work: load every source as tensors -> get the body (train it whole from scratch on
a balanced mixture of all sources, then recompute its BatchNorm statistics; or take
torchvision's COCO one; or reuse a trained one) -> round it to the stored float16 precision
-> cache its features -> for each task, train the cross-entropy and the soft-IoU heads on
the cached features of that task's sources -> choose the inference size on training photos
-> score every head on every source's validation photos at their own resolution -> only
then write body and heads, so an interrupted run leaves the previous weights untouched.

Tasks: ``objects`` (the main object of any photo) trains on every source; ``flowers`` and
``horses`` on the source of that name (``--seg-tasks`` sets others).
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from colorseg import weights_io
from colorseg.errors import DataError
from colorseg.paths import data_root
from colorseg.segmentation import data as seg_data
from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation import oxford17
from colorseg.segmentation import train as seg_train
from colorseg.segmentation.inference import HEAD_NAMES, Segmenter, evaluate_samples
from colorseg.segmentation.models import (
    BACKBONES,
    DEFAULT_BACKBONE,
    SOURCES,
    DeepLabV3Body,
    DeepLabV3Head,
    SegmentationNet,
    pretrained_body,
)

# Default sources, inside the data folder (``COLORSEG_DATA`` or ``data/`` in the checkout).
DEFAULT_SOURCES = {"davis": "davis2016", "flowers": "oxford17flowers", "horses": "weizmann_horse_db"}
TASK_SOURCES = ("flowers", "horses")  # sources that are also a task of their own
ALL_SOURCES_TASK = "objects"
REGENERATE = "python train_all.py --only segmentation"
# Inference sizes tried, as multiples of the training size. Training sees random windows of
# 0.6-1.2 times the image (0.9 on average) at the training size, so objects look larger than
# in a whole photo at that size; a somewhat larger inference size undoes that ("FixRes",
# Touvron et al. 2019). The largest, 10/7, keeps a 224 px body's map at 20 cells, below the
# 24 at which the never-trained rate-24 ASPP taps would start to read real features.
WORKING_SIZE_FACTORS = (1.0, 8 / 7, 9 / 7, 10 / 7)
WORKING_SIZE_IMAGES_PER_SOURCE = 40  # training photos per source scored at each candidate size
BODY_PLOT = "seg_body_curves.png"
HEADS_PLOT = "seg_heads_curves.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    body = seg_train.BodyRecipe()
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
        "--seg-source", choices=SOURCES, default="scratch",
        help="body: train DeepLabV3 from scratch on the sources, or torchvision's COCO-pretrained one (needs a network)",
    )
    group.add_argument(
        "--seg-body-from", type=Path, metavar="WEIGHTS_DIR",
        help="reuse the frozen body in this weights folder and train only the heads",
    )
    group.add_argument("--seg-backbone", choices=sorted(BACKBONES), default=DEFAULT_BACKBONE)
    group.add_argument("--seg-image-size", type=int, default=224, help="side of the square training images (px)")
    group.add_argument("--seg-epochs", type=int, default=body.epochs, help="body epochs (scratch source)")
    group.add_argument("--seg-batch-size", type=int, default=body.batch_size, help="body batch size (scratch source)")
    group.add_argument(
        "--seg-samples-per-source", type=int, default=body.samples_per_source,
        help="images drawn from every source in each body epoch (0: every image once)",
    )
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


def resolve_sources(specs: list[str] | None) -> list[seg_data.Source]:
    """The named sources to train on: the given NAME=FOLDER specs, or the default folders present."""
    if specs:
        sources = [seg_data.Source.parse(s) if "=" in s else seg_data.Source(Path(s).name, Path(s)) for s in specs]
    else:
        root = data_root()
        sources = [seg_data.Source(n, root / f) for n, f in DEFAULT_SOURCES.items() if (root / f).is_dir()]
        if not sources:
            raise DataError(
                f"no segmentation data in {root}: pass --seg-data NAME=FOLDER (photos with binary masks) "
                "or set COLORSEG_DATA to a folder holding davis2016/, oxford17flowers/ or weizmann_horse_db/"
            )
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise DataError(f"segmentation source names must differ: {' '.join(names)}")
    return sources


def resolve_tasks(specs: list[str] | None, sources: list[seg_data.Source]) -> dict[str, list[str]]:
    """Task name -> names of the sources its heads train and are scored on."""
    names = [s.name for s in sources]
    if not specs:
        tasks = {ALL_SOURCES_TASK: names}
        tasks.update({name: [name] for name in names if name in TASK_SOURCES})
        return tasks
    tasks = {}
    for spec in specs:
        task, sep, listed = spec.partition("=")
        chosen = [n for n in listed.split(",") if n]
        unknown = sorted(set(chosen) - set(names))
        if not sep or not task or not chosen or unknown:
            raise DataError(f"--seg-tasks {spec!r}: expected TASK=SOURCE[,SOURCE...] with sources among {', '.join(names)}")
        tasks[task] = chosen
    return tasks


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


@dataclass
class SegmentationData:
    train: seg_data.SegmentationTensors  # mixture of every source's training split, square
    val: dict[str, seg_data.SegmentationTensors]  # per source, square (body and head curves)
    val_samples: dict[str, list[seg_data.Sample]]  # per source, at the masks' own size (final scores)
    size_samples: dict[str, list[seg_data.Sample]]  # a few training photos per source (inference size)
    description: dict[str, Any]  # what the weights record: per source its layout, split rule, counts


def load_data(sources: list[seg_data.Source], size: int, device: torch.device, download: bool) -> SegmentationData:
    train, val, val_samples, size_samples, description = {}, {}, {}, {}, {}
    for source in sources:
        if download:
            oxford17.prepare_oxford17(source.root, download=True)
        layout, pairs = seg_data.find_pairs(source.root)
        train[source.name] = seg_data.load_split_tensors(source.root, "train", size)
        val_samples[source.name] = seg_data.load_samples(source.root, "val")
        val[source.name] = seg_data.samples_to_tensors(val_samples[source.name], size).to(device)
        train_pairs = seg_data.select_split(source.root, "train")
        step = max(1, len(train_pairs) // WORKING_SIZE_IMAGES_PER_SOURCE)
        size_samples[source.name] = [seg_data.read_sample(p, layout) for p in train_pairs[::step][:WORKING_SIZE_IMAGES_PER_SOURCE]]
        # Data are recorded by name, layout, counts and a content hash: never a machine path.
        description[source.name] = {
            "folder": source.root.name, "layout": layout, "split": seg_data.SPLIT_RULES[layout],
            "train_images": len(train[source.name].names), "val_images": len(val_samples[source.name]),
            "names_sha256": weights_io.names_digest(sorted(p.name for p in pairs)),
        }
    return SegmentationData(seg_data.concatenate(train).to(device), val, val_samples, size_samples, description)


def _choose_working_size(
    segmenter: Segmenter, size: int, samples: dict[str, list[seg_data.Sample]], tasks: dict[str, list[str]]
) -> tuple[int, dict[int, float]]:
    """The inference size with the best mean IoU of every head on its task's *training*
    photos, so that the validation splits stay untouched; returns it and every candidate's score."""
    candidates = sorted({max(16, round(size * factor / 16) * 16) for factor in WORKING_SIZE_FACTORS})
    scores = {}
    for candidate in candidates:
        ious = []
        for task, names in tasks.items():
            for name in names:
                metrics = evaluate_samples(segmenter, samples[name], (task,), candidate)[task]
                ious += [metrics[loss]["iou"] for loss in HEAD_NAMES]
        scores[candidate] = sum(ious) / len(ious)
    return max(candidates, key=scores.get), scores


def _plot_curves(report_dir: Path, body_history: list[dict], head_histories: dict[str, list[dict]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if body_history:
        fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(10, 4))
        loss_ax.plot([r["epoch"] for r in body_history], [r["train_loss"] for r in body_history], label="train")
        scored = [r for r in body_history if any(k.endswith("_iou") and k.startswith("val_") for k in r)]
        for key in sorted({k for r in scored for k in r if k.startswith("val_") and k.endswith("_iou")}):
            source = key[len("val_"):-len("_iou")]
            iou_ax.plot([r["epoch"] for r in scored], [r[key] for r in scored], "o-", label=f"{source} IoU")
            loss_ax.plot([r["epoch"] for r in scored], [r[f"val_{source}_loss"] for r in scored], "o--", label=f"{source} validation")
        loss_ax.set(title="body (from scratch): loss", xlabel="epoch")
        loss_ax.legend()
        iou_ax.set(title="body: validation IoU per source", xlabel="epoch", ylim=(0, 1))
        iou_ax.legend()
        fig.tight_layout()
        fig.savefig(report_dir / BODY_PLOT, dpi=100)
        plt.close(fig)
        written.append(BODY_PLOT)
    fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, history in head_histories.items():
        epochs = [r["epoch"] for r in history]
        loss_ax.plot(epochs, [r["train_loss"] for r in history], label=f"{name} train")
        iou_ax.plot(epochs, [r["val_iou"] for r in history], label=f"{name}")
    loss_ax.set(title="heads on cached features: training loss", xlabel="epoch")
    iou_ax.set(title="heads: validation IoU (task's sources)", xlabel="epoch", ylim=(0, 1))
    loss_ax.legend(fontsize=7)
    iou_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(report_dir / HEADS_PLOT, dpi=100)
    plt.close(fig)
    return [*written, HEADS_PLOT]


def get_body(
    args: argparse.Namespace, data: SegmentationData, device: torch.device
) -> tuple[torch.nn.Module, list[dict], dict[str, Any]]:
    """The frozen body, its training history (scratch only) and what its JSON records about its origin."""
    recipe = body_recipe(args)
    if args.seg_body_from is not None:
        body, description = weights_io.load_module(args.seg_body_from, weights_io.SEG_BODY_STEM, device)
        kept = ("source", "backbone", "recipe", "history", "data", "command", "seed", "cpu_seconds", "wall_seconds", "metrics")
        return body, [], {key: description[key] for key in kept if key in description}
    if args.seg_source == "pretrained":
        body = pretrained_body(args.seg_backbone).to(device)
        return body, [], {"source": "pretrained", "backbone": args.seg_backbone, "recipe": "torchvision COCO_WITH_VOC_LABELS_V1", "history": []}
    net = SegmentationNet(DeepLabV3Body(args.seg_backbone), DeepLabV3Head()).to(device)
    history = seg_train.train_body(
        net, data.train, data.val, recipe,
        generator=torch.Generator().manual_seed(args.seg_seed),
        augment_generator=torch.Generator(device=device).manual_seed(args.seg_seed + 1),
    )
    origin = {
        "source": "scratch", "backbone": args.seg_backbone, "recipe": recipe.to_dict(), "history": history,
        # Scores of the temporary head trained along with the body, at the training size.
        "metrics": {"val_at_training_size": history[-1]},
    }
    return net.body, history, origin


def body_recipe(args: argparse.Namespace) -> seg_train.BodyRecipe:
    return seg_train.BodyRecipe(
        epochs=args.seg_epochs, batch_size=args.seg_batch_size, lr=args.seg_lr, loss=args.seg_body_loss,
        eval_every=args.seg_eval_every, small_size=args.seg_small_size, small_fraction=args.seg_small_fraction,
        samples_per_source=args.seg_samples_per_source,
    )


def train_heads(
    body: torch.nn.Module, data: SegmentationData, tasks: dict[str, list[str]], recipe: seg_train.HeadRecipe,
    seed: int, batch_size: int, timer,
) -> tuple[dict[str, dict[str, torch.nn.Module]], dict[str, list[dict]]]:
    """Part D for each task: fresh 1x1 heads, one per loss, on the frozen body's cached features."""
    with timer("features"):
        train_features = seg_train.compute_features(body, data.train.images, batch_size)
        val_features = {n: seg_train.compute_features(body, v.images, batch_size) for n, v in data.val.items()}
    heads: dict[str, dict[str, torch.nn.Module]] = {}
    histories: dict[str, list[dict]] = {}
    for task, names in tasks.items():
        wanted = torch.tensor([data.train.source_names.index(n) for n in names], device=data.train.sources.device)
        index = torch.isin(data.train.sources, wanted)
        val_x = torch.cat([val_features[n] for n in names])
        val_y = torch.cat([data.val[n].masks for n in names])
        heads[task] = {}
        for loss in HEAD_NAMES:
            with timer(f"head_{task}_{loss}"):
                heads[task][loss], histories[f"{task}/{loss}"] = seg_train.train_head(
                    loss, train_features[index], data.train.masks[index], val_x, val_y, recipe,
                    generator=torch.Generator().manual_seed(seed),
                )
    return heads, histories


def run(args: argparse.Namespace, weights_dir: Path, report_dir: Path, device: torch.device) -> dict[str, Any]:
    """Get the body, train every task's heads, score, save; returns the training report's
    section, ``{"segmentation": {...}}``."""
    if args.seg_threads > 0:
        torch.set_num_threads(args.seg_threads)
    torch.manual_seed(args.seg_seed)
    device = torch.device(device)
    size = args.seg_image_size
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    timer = lambda name: _stage(name, cpu, wall)  # noqa: E731

    sources = resolve_sources(args.seg_data)
    tasks = resolve_tasks(args.seg_tasks, sources)
    with timer("data"):
        data = load_data(sources, size, device, args.seg_download)
    with timer("body"):
        body, body_history, origin = get_body(args, data, device)
        body_dtype = torch.float16 if _round_to_float16(body) else None
    head_recipe = seg_train.HEAD_RECIPES[args.seg_head_recipe]
    heads, head_histories = train_heads(body, data, tasks, head_recipe, args.seg_seed, args.seg_batch_size, timer)
    segmenter = Segmenter(body, heads, size, {}, device)
    with timer("working_size"):
        working_size, working_size_scores = _choose_working_size(segmenter, size, data.size_samples, tasks)
    with timer("evaluate"):
        # {task: {loss: {source: metrics}}}: every head on every source's validation photos.
        by_source = {name: evaluate_samples(segmenter, samples, None, working_size) for name, samples in data.val_samples.items()}
        metrics = {t: {loss: {n: by_source[n][t][loss] for n in by_source} for loss in HEAD_NAMES} for t in tasks}

    plots = _plot_curves(Path(report_dir), body_history, head_histories)
    common = {
        "data": data.description,
        "image_size": size,
        # train_all.py sets args.command (quoted argv); otherwise the running command line.
        "command": getattr(args, "command", None) or weights_io.command_line(),
        "regenerate": REGENERATE,
        "seed": args.seg_seed,
    }
    body_metadata = {
        **common, **origin,
        "tasks": list(tasks),
        "task_sources": tasks,
        "working_size": working_size,
        # Mean IoU of every head on its task's training photos at each candidate inference size.
        "working_size_scores_train": {str(k): v for k, v in working_size_scores.items()},
        # process_time counts every thread: with 2 threads it is about twice the wall time.
        "cpu_seconds": origin.get("cpu_seconds") or {key: cpu[key] for key in ("data", "body", "working_size")},
        "wall_seconds": origin.get("wall_seconds") or {key: wall[key] for key in ("data", "body", "working_size")},
    }
    save_segmentation(weights_dir, body, body_dtype, body_metadata, heads, {
        (task, loss): {
            **common,
            "task": task, "task_sources": tasks[task], "loss": loss,
            "body_source": origin["source"],
            "recipe": {"name": args.seg_head_recipe, **head_recipe.to_dict()},
            # Per source, at each validation photo's own (mask) resolution, as colorseg.evaluate
            # scores, with the body run at working_size.
            "metrics": {"val": metrics[task][loss]},
            "history": head_histories[f"{task}/{loss}"],
            "cpu_seconds": {key: cpu[key] for key in ("features", f"head_{task}_{loss}")},
            "wall_seconds": {key: wall[key] for key in ("features", f"head_{task}_{loss}")},
        }
        for task in tasks for loss in HEAD_NAMES
    })
    return {"segmentation": {
        "settings": {
            "source": origin["source"], "backbone": origin.get("backbone"), "image_size": size,
            "working_size": working_size, "tasks": tasks,
            "body_recipe": origin.get("recipe"),
            "head_recipe": {"name": args.seg_head_recipe, **head_recipe.to_dict()},
            "seed": args.seg_seed, "threads": torch.get_num_threads(), "device": str(device),
            "body_stored_dtype": "float16" if body_dtype else "float32",
        },
        "data": data.description,
        "metrics": {
            "val": metrics,
            "body_val_at_training_size": body_history[-1] if body_history else None,
            "train_by_working_size": {str(k): v for k, v in working_size_scores.items()},
        },
        "cpu_seconds": {**cpu, "total": round(sum(cpu.values()), 1)},
        "wall_seconds": {**wall, "total": round(sum(wall.values()), 1)},
        "weights": [weights_io.SEG_BODY_STEM, *(weights_io.seg_head_stem(t, loss) for t in tasks for loss in HEAD_NAMES)],
        "plots": plots,
    }}


def save_segmentation(
    weights_dir: Path, body: torch.nn.Module, body_dtype, body_metadata: dict,
    heads: dict[str, dict[str, torch.nn.Module]], head_metadata: dict[tuple[str, str], dict],
) -> None:
    """Write the body and every head, tied to it by the body's sha256, as one set: a kill at
    any instant leaves either the previous body and heads or the new ones."""
    with weights_io.WeightSet(weights_dir) as weight_set:
        weight_set.save_module(
            body, weights_io.SEG_BODY_STEM, architecture="DeepLabV3Body",
            constructor={"backbone": body_metadata.get("backbone", DEFAULT_BACKBONE)}, metadata=body_metadata,
            dtype=body_dtype,
        )
        body_sha256 = weight_set.digest(weights_io.SEG_BODY_STEM)
        for (task, loss), metadata in head_metadata.items():
            weight_set.save_module(
                heads[task][loss], weights_io.seg_head_stem(task, loss), architecture="DeepLabV3Head",
                constructor={}, metadata={**metadata, "body_sha256": body_sha256},
            )
    # Heads of tasks this run did not train belong to the previous body (the new body's JSON
    # lists its tasks, so they are never loaded): remove them.
    kept = {weights_io.seg_head_stem(t, loss) for t, loss in head_metadata}
    for stale in Path(weights_dir).glob("seg_head_*.json"):
        if stale.stem not in kept:
            stale.with_suffix(".safetensors").unlink(missing_ok=True)
            stale.unlink()
