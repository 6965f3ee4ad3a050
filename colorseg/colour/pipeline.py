"""The colourization part of ``train_all.py``: palette, the three nets, the batch-size sweep
(their training replays: :mod:`colorseg.colour.training_replay`; reports: :mod:`colorseg.colour.report`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from colorseg.colour.data import default_cifar_dir, load_horses, to_grey
from colorseg.colour.models import COLOUR_MODEL_NAMES, COLOUR_STEMS
from colorseg.colour.palette import (
    NUM_COLOURS,
    PALETTE_STEM,
    check_palette,
    fit_palette,
    label_images,
    palette_record,
    same_palette,
)
from colorseg.colour.recipes import ColourRecipe, get_recipe
from colorseg.colour.report import write_batch_sweep, write_report
from colorseg.colour.train import train_colour_net
from colorseg.colour.training_replay import ColourReplay, example_photos, replay_stem
from colorseg.errors import WeightsError
from colorseg.training import finish_stage
from colorseg.training.config import RunConfig
from colorseg.training.provenance import library_versions, tensors_digest
from colorseg.weights import WeightSet, load_module, read_description
from colorseg.weights.sets import NoWrites

SWEEP_BATCH_SIZES = (32, 64, 128, 256, 512)
REGENERATE = "python train_all.py --only colour"


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColourConfig:
    """Everything the colour part of a run is asked to do (train_all.py fills it from its flags)."""

    data: Path = field(default_factory=default_cifar_dir)
    download: bool = False
    recipe: str = "default"
    models: tuple[str, ...] = COLOUR_MODEL_NAMES
    # Overrides of the recipe (None: the recipe's own value).
    epochs: int | None = None
    batch_size: int | None = None
    kernel: int | None = None
    seed: int | None = None
    teacher: str | None = None  # a net's name, or "none" for no distillation
    distill_weight: float | None = None
    compile: bool = False
    holdout: int = 0  # validate on the last N training images instead of the test split
    batch_sweep: bool = False
    sweep_sizes: tuple[int, ...] = SWEEP_BATCH_SIZES


def _prepare(config: ColourConfig, device: torch.device) -> dict:
    started = time.perf_counter()
    horses = load_horses(config.data, download=config.download)
    train_rgb, val_rgb = horses.train, horses.test
    if config.holdout:
        train_rgb, val_rgb = horses.train[: -config.holdout], horses.train[-config.holdout :]
    palette = fit_palette(train_rgb, NUM_COLOURS, seed=0)
    data = {
        "train": (to_grey(train_rgb).to(device), label_images(train_rgb, palette).to(device)),
        "val": (to_grey(val_rgb).to(device), label_images(val_rgb, palette).to(device)),
        "palette": palette,
        "info": {
            # By name, layout, counts and a content hash: never a machine path.
            "folder": Path(config.data).resolve().name,
            "layout": horses.source,
            "images_sha256": tensors_digest(horses.train, horses.test),
            "train_images": len(train_rgb),
            "val_images": len(val_rgb),
            "validation": f"last {config.holdout} training images" if config.holdout else "test split",
        },
    }
    logger.info(f"colour data: {data['info']} prepared in {time.perf_counter() - started:.1f}s")
    return data


def _train(
    name: str,
    recipe: ColourRecipe,
    data: dict,
    run_config: RunConfig,
    label: str,
    teacher=None,
    compile_model=False,
    replay: ColourReplay | None = None,
):
    logger.info(label)
    started = time.perf_counter()
    model, history = train_colour_net(
        name,
        recipe,
        data["train"],
        data["val"],
        run_config.device,
        len(data["palette"]),
        [replay] if replay is not None else [],
        teacher,
        compile_model,
        run_config.ctx,
        run_config.checkpointing,
    )
    return model, history, time.perf_counter() - started


def _batch_sweep(config: ColourConfig, run_config: RunConfig, data: dict) -> dict:
    histories, rows = {}, []
    for batch_size in config.sweep_sizes:
        recipe = get_recipe("assignment", batch_size=batch_size, epochs=config.epochs, seed=config.seed)
        _, history, seconds = _train(
            "ConvTransposeNet",
            recipe,
            data,
            run_config,
            f"ConvTransposeNet batch {batch_size}",
            compile_model=config.compile,
        )
        histories[f"batch {batch_size}"] = history
        rows.append({"batch_size": batch_size, **_final(history), "seconds": round(seconds, 1)})
        logger.info(f"batch {batch_size}: {rows[-1]}")
    if not run_config.ctx.is_main:
        return {}
    report = {
        "command": run_config.command,
        "device": str(run_config.device),
        "data": data["info"],
        "epochs": recipe.epochs,
        "rows": rows,
    }
    write_batch_sweep(run_config.report_dir, histories, report)
    return {"batch_sweep": report}


def _final(history: list[dict]) -> dict:
    last = history[-1]
    return {"val_loss": round(last["val_loss"], 4), "val_accuracy": round(last["val_accuracy"], 4)}


def _recipe(config: ColourConfig, name: str) -> ColourRecipe:
    recipe = get_recipe(
        config.recipe,
        name,
        epochs=config.epochs,
        batch_size=config.batch_size,
        kernel=config.kernel,
        seed=config.seed,
        teacher=config.teacher,
        distill_weight=config.distill_weight,
    )
    # "--colour-teacher UNet" distils the other nets from UNet; UNet itself trains on the labels.
    if recipe.teacher in ("none", name):
        recipe = replace(recipe, teacher=None, distill_weight=0.0)
    return recipe


def _teacher(name: str, trained: dict, weights_dir: Path, palette: torch.Tensor, device: torch.device):
    """The teacher net and what to record about it: trained earlier in this run, or the one
    saved in ``weights_dir``, which must use this run's palette (its outputs index it)."""
    if name in trained:
        return trained[name], {"architecture": name, "source": "trained in this run"}
    try:
        model, description = load_module(weights_dir, COLOUR_STEMS[name], device, expect=name)
    except WeightsError as error:
        raise WeightsError(
            f"distillation needs a trained {name}: {error}; or train it in this run (--colour-nets {name} ...)"
        ) from None
    if "palette" not in description or not same_palette(description, palette):
        raise WeightsError(
            f"{weights_dir / COLOUR_STEMS[name]} was trained with another palette; retrain {name} first "
            f"(add {name} to --colour-nets)"
        )
    logger.info(
        f"teacher {name}: {weights_dir / COLOUR_STEMS[name]}.safetensors (trained on {description.get('data')})"
    )
    return model, {"architecture": name, "sha256": description.get("sha256"), "data": description.get("data")}


def run(config: ColourConfig, run_config: RunConfig) -> dict:
    """Train and save the colour part; returns the section of the training report."""
    weights_dir, device = run_config.weights_dir, run_config.device
    data = _prepare(config, device)
    if config.batch_sweep:
        return _batch_sweep(config, run_config, data)

    palette = data["palette"]
    recipes = {name: _recipe(config, name) for name in config.models}
    trained, replays = {}, {}
    photos = example_photos()
    # The palette and the nets trained on it are one weight set: nothing is written until every
    # net of this run has trained, then all land at once (see colorseg.weights.sets). A run that
    # stops early, or is killed at any instant, leaves the previous palette and nets as they were.
    ctx = run_config.ctx
    with WeightSet(weights_dir) if ctx.is_main else NoWrites() as weight_set:
        weight_set.save_tensors(
            {"palette": palette.float()},
            PALETTE_STEM,
            {
                "what": "24-colour k-means palette of CIFAR-10 horse training pixels, RGB in [0, 1]",
                "seed": 0,
                "data": data["info"],
                "command": run_config.command,
                "regenerate": REGENERATE,
            },
        )
        record = palette_record(palette, weight_set.digest(PALETTE_STEM))
        # Teachers train before the nets distilled from them.
        for name in sorted(config.models, key=lambda name: recipes[name].teacher is not None):
            recipe = recipes[name]
            teacher, teacher_info = None, None
            if recipe.teacher is not None:
                teacher, teacher_info = _teacher(recipe.teacher, trained, weights_dir, palette, device)
            replay = replays[name] = ColourReplay(name, *photos, palette, device) if ctx.is_main and photos else None
            model, history, seconds = _train(
                name, recipe, data, run_config, f"{name} ({recipe.name})", teacher, config.compile, replay
            )
            trained[name] = model
            metrics = {**_final(history), "train_seconds": round(seconds, 1)}  # the replay included
            if replay is not None:
                metrics["replay_seconds"] = round(replay.seconds, 3)
            weight_set.save_module(
                model,
                COLOUR_STEMS[name],
                architecture=name,
                constructor={
                    "kernel": recipe.kernel,
                    "num_filters": recipe.num_filters,
                    "num_colours": len(palette),
                    "num_in_channels": 1,
                },
                metadata=_net_metadata(recipe, record, teacher_info, data, metrics, history, run_config),
            )
            if ctx.is_main:
                logger.info(f"{name}: {metrics} (committed with the palette once every net of this run has trained)")
        if ctx.is_main:
            _warn_left_behind(weights_dir, palette, trained)
    if not ctx.is_main:  # rank 0 writes; the others wait for it
        ctx.barrier()
        return {}
    for name in trained:  # their final weights are in place: the checkpoints are spent
        finish_stage(run_config.checkpointing, f"colour_{recipes[name].name}_{name}")
        if replays[name] is not None:
            replays[name].recorder.save(run_config.report_dir, replay_stem(name))
    logger.info(f"committed the palette and {', '.join(trained)} to {weights_dir}")
    report = write_report(weights_dir, run_config.report_dir, config.recipe)
    ctx.barrier()
    return {f"colour_{config.recipe}": report}


def _net_metadata(
    recipe: ColourRecipe,
    record: dict,
    teacher_info: dict | None,
    data: dict,
    metrics: dict,
    history: list[dict],
    run_config: RunConfig,
) -> dict:
    """What a colour net's JSON records besides its architecture: palette, recipe, data, scores, provenance."""
    return {
        "task": "colourization",
        **record,
        "recipe": recipe.to_dict(),
        **({"teacher": teacher_info} if teacher_info else {}),
        "data": data["info"],
        "metrics": metrics,
        "history": history,
        **run_config.hardware(),
        "command": run_config.command,
        "regenerate": REGENERATE,
        "versions": library_versions(),
    }


def _warn_left_behind(weights_dir: Path, palette: torch.Tensor, trained: dict) -> None:
    """Say which committed nets not trained in this run the new palette will leave unusable."""
    for name, stem in COLOUR_STEMS.items():
        if name in trained:
            continue
        try:
            check_palette(name, read_description(weights_dir, stem), palette)
        except WeightsError:
            if (weights_dir / f"{stem}.json").is_file():
                logger.info(
                    f"warning: {name} in {weights_dir} was trained with another palette; the app and evaluate "
                    f"will refuse it until it is retrained (python train_all.py --only colour --colour-nets {name})"
                )
