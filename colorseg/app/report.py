"""The Model tab's account of the weights in use: a table, training curves, the report JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from colorseg.app.models import Models
from colorseg.app.settings import REPORTS_DIR
from colorseg.errors import REGENERATE_HINT


def report_dirs(weights_dir: Path) -> list[Path]:
    """A Hub snapshot carries the report inside the weights folder; a local run writes reports/."""
    return [d for d in (weights_dir / "reports", REPORTS_DIR) if d.is_dir()]


def _flat(metrics: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    rows = []
    for key, value in metrics.items():
        rows += _flat(value, (*prefix, key)) if isinstance(value, dict) else [((*prefix, key), value)]
    return rows


def format_metrics(metrics: dict[str, Any]) -> str:
    """One table cell. Segmentation metrics nest by source ({"val": {"davis": {"iou": ...}}}), three
    numbers a source: of those, the cell shows IoU."""
    rows = [(key, value) for key, value in _flat(metrics) if isinstance(value, (int, float, str))]
    if any(len(key) > 1 for key, _ in rows):
        rows = [(key, value) for key, value in rows if key[-1] == "iou" or key[-1].endswith("_iou")]
    return ", ".join(
        f"{' '.join(key)} {value:.4g}" if isinstance(value, float) else f"{' '.join(key)} {value}"
        for key, value in rows
    )


def described_parts(description: dict[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, weight description) for every dict naming an architecture in a nested description,
    such as the segmenter's {"body": {...}, "heads": {"seg_head_objects_soft_iou": {...}, ...}}."""
    parts = []
    for key, part in description.items():
        if isinstance(part, dict) and "architecture" in part:
            parts.append((f"{prefix} {key}", part))
        elif isinstance(part, dict):
            parts += described_parts(part, prefix)
    return parts


def without_server_paths(value: Any) -> Any:
    """The training report as shown to visitors: absolute paths (data folders, weight files) by their name."""
    if isinstance(value, dict):
        return {key: without_server_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_server_paths(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value) and "\n" not in value:
        return Path(value).name
    return value


def _table(models: Models) -> str:
    described = list(models.colour.descriptions.items()) if models.colour else []
    if models.segmenter is not None:
        described += described_parts(getattr(models.segmenter, "description", None) or {}, "segmentation")
    rows = [
        f"{models.source} Running on {models.device}.",
        "",
        "| Model | Architecture | Final metrics | Trained with |",
        "| --- | --- | --- | --- |",
    ]
    for name, description in described:
        command = description.get("command")
        rows.append(
            f"| {name} | {description.get('architecture', '')} | {format_metrics(description.get('metrics') or {})} "
            f"| {f'`{command}`' if command else ''} |"
        )
    if not described:
        rows.append(f"| (none loaded) | | | run `{REGENERATE_HINT}` |")
    return "\n".join(rows)


def weights_report(models: Models) -> tuple[str, list[tuple[str, str]], dict[str, Any] | None]:
    """Markdown table of the weights in use, curve images and the training report JSON."""
    curves, report = [], None
    for folder in report_dirs(models.weights_dir):
        curves += [
            (str(p), p.stem.replace("_", " ")) for p in sorted(folder.glob("*.png")) if not p.stem.startswith("replay_")
        ]  # replay strips are the replay panel's
        path = folder / "training_report.json"
        if report is None and path.is_file():
            try:
                report = without_server_paths(json.loads(path.read_text()))
            except (UnicodeDecodeError, json.JSONDecodeError):
                report = {"error": f"{path.name} is not valid JSON"}
    return _table(models), curves, report
