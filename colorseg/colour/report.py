"""The colour part's reports: ``colour_<recipe>.json`` with its curves, rebuilt from the
weights, and the batch-size sweep's table and plot."""

from __future__ import annotations

from pathlib import Path

from colorseg.colour.models import COLOUR_STEMS
from colorseg.errors import WeightsError
from colorseg.files import atomic_write_bytes, atomic_write_json
from colorseg.training.plots import plot_curves
from colorseg.weights import read_description

# Validation loss after 25 epochs reported in the assignment's Question B.5.
ASSIGNMENT_SWEEP = {32: 1.09, 64: 1.14, 128: 1.21, 256: 1.29, 512: 1.43}


def write_batch_sweep(report_dir: Path, histories: dict[str, list[dict]], report: dict) -> None:
    """batch_sweep.png (validation loss of every batch size), batch_sweep.json (``report``) and
    batch_sweep.md (its rows next to the assignment's figures)."""
    plot_curves(
        histories,
        [("val_loss", "validation loss")],
        report_dir / "batch_sweep.png",
        "ConvTransposeNet, batch-size sweep",
    )
    atomic_write_json(report_dir / "batch_sweep.json", report)
    table = ["| batch | val loss | val accuracy | assignment's val loss | seconds |", "|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        reference = ASSIGNMENT_SWEEP.get(row["batch_size"], float("nan"))
        table.append(
            f"| {row['batch_size']} | {row['val_loss']:.3f} | {100 * row['val_accuracy']:.1f} % "
            f"| {reference:.2f} | {row['seconds']:.0f} |"
        )
    atomic_write_bytes(report_dir / "batch_sweep.md", ("\n".join(table) + "\n").encode())


def write_report(weights_dir: Path, report_dir: Path, recipe_name: str) -> dict:
    """Rebuild ``colour_<recipe>.json`` and its curves from the weight descriptions in
    ``weights_dir``: the weights are the single source of truth, so training a subset of the
    nets (or two runs at once) still gives a report of every net that is there."""
    models = {}
    for name, stem in COLOUR_STEMS.items():
        try:
            description = read_description(weights_dir, stem)
        except WeightsError:
            continue
        if description.get("recipe", {}).get("name") != recipe_name:
            continue
        models[name] = {
            key: description.get(key) for key in ("metrics", "recipe", "data", "device", "command", "history")
        }
        models[name]["weights"] = f"{stem}.safetensors"  # relative to the weights folder: no server paths
    report = {"recipe": recipe_name, "models": models}
    atomic_write_json(report_dir / f"colour_{recipe_name}.json", report)
    plot_curves(
        {name: entry["history"] for name, entry in models.items()},
        [("train_loss", "training loss"), ("val_loss", "validation loss"), ("val_accuracy", "validation accuracy")],
        report_dir / f"colour_{recipe_name}_curves.png",
        f"colourization, recipe {recipe_name}",
    )
    return report
