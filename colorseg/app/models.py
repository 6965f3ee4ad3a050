"""Loading the models once at start-up: palette, colour nets, segmenter; weights from the
environment's folder, a Hub repo (falling back to weights/ offline) or a given folder.

``build_demo(models=...)`` takes a :class:`Models` built any other way (tests build one
with a stand-in segmenter), and ``build_demo(loader=...)`` another loading function.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from colorseg.colour import inference as colourizing
from colorseg.deploy.hub import resolve_weights_dir
from colorseg.errors import REGENERATE_HINT, WeightsError
from colorseg.paths import DEFAULT_WEIGHTS_DIR


@dataclass
class Models:
    """Everything loaded once at start-up; a part that failed to load says why in its ``*_problem``."""

    weights_dir: Path
    source: str  # where the weights came from, for the Model tab
    colour: colourizing.ColourModels | None = None
    colour_problem: str | None = None
    segmenter: Any = None  # colorseg.segmentation.inference.Segmenter, or anything with its .tasks / .probabilities
    segment_problem: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


Loader = Callable[[str | Path | None, str | None], Models]  # (weights_dir, device) -> Models
SegmenterLoader = Callable[..., Any]  # (weights_dir, device=...) -> a Segmenter; WeightsError if missing


def regenerate(reason: str) -> str:
    return f"{reason}\n\nRegenerate the weights with `{REGENERATE_HINT}` (see README.md), then restart the app."


def hide_server_paths(text: str | None, weights_dir: Path) -> str | None:
    """``text`` with a folder's server path (the weights folder, a report folder) dropped: files
    are named relative to it, and the folder itself by its own name."""
    if not text:
        return text
    for folder in sorted(
        {str(weights_dir), os.path.abspath(weights_dir), os.path.realpath(weights_dir)}, key=len, reverse=True
    ):
        text = text.replace(folder + os.sep, "").replace(folder, f"{Path(folder).name}{os.sep}")
    return text


def _where(weights_dir: str | Path | None) -> tuple[Path, str]:
    """The weights folder and a sentence saying where it came from: argument, environment, Hub, weights/."""
    if weights_dir is None and os.environ.get("COLORSEG_WEIGHTS_DIR"):
        weights_dir = os.environ["COLORSEG_WEIGHTS_DIR"]
    if weights_dir is None:
        source = resolve_weights_dir(DEFAULT_WEIGHTS_DIR)
        return Path(source.directory), source.message
    return Path(weights_dir), f"Weights from the folder {weights_dir}."


def _load_colour(models: Models) -> None:
    try:
        models.colour = colourizing.load_colourizers(models.weights_dir, models.device)
        if not models.colour.nets:
            models.colour_problem = regenerate(
                "No colourization net could be loaded:\n\n"
                + "\n".join(f"- {why}" for why in models.colour.problems.values())
            )
    except WeightsError as error:
        models.colour_problem = regenerate(f"The colour palette could not be loaded: {error}")


def _load_segmenter(models: Models, load_segmenter: SegmenterLoader | None) -> None:
    try:
        if load_segmenter is None:
            from colorseg.segmentation.inference import (
                load_segmenter,
            )  # imported here: a broken module must not stop the app

        models.segmenter = load_segmenter(models.weights_dir, device=str(models.device))
    except WeightsError as error:
        models.segment_problem = regenerate(f"The segmentation weights could not be loaded: {error}")
    except Exception as error:  # noqa: BLE001 - the segmenter is its own module: nothing in it may take the app down
        models.segment_problem = regenerate(
            f"The segmentation model could not be set up ({type(error).__name__}: {error})."
        )


def load_models(
    weights_dir: str | Path | None = None, device: str | None = None, load_segmenter: SegmenterLoader | None = None
) -> Models:
    """Load the palette, colour nets and segmenter from ``weights_dir`` (default: env, Hub, weights/);
    ``load_segmenter`` (default colorseg.segmentation.inference.load_segmenter) builds the segmenter."""
    folder, message = _where(weights_dir)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device or os.environ.get("COLORSEG_DEVICE") or default_device)
    models = Models(weights_dir=folder, source=message, device=device)
    _load_colour(models)
    _load_segmenter(models, load_segmenter)

    # Visitors see files relative to the weights folder, never the server's own paths.
    def hide(text: str) -> str:
        return hide_server_paths(text, models.weights_dir)

    models.source = hide(models.source)
    models.colour_problem, models.segment_problem = hide(models.colour_problem), hide(models.segment_problem)
    if models.colour is not None:
        models.colour.problems = {name: hide(why) for name, why in models.colour.problems.items()}
    return models
