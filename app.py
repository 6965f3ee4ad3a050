"""colorseg demo: colourize photos with the assignment's three CNNs, segment them with two DeepLabV3 heads.

    python app.py            # http://127.0.0.1:7860; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected

Environment (all optional):
    COLORSEG_WEIGHTS_DIR     weights folder (default weights/)
    COLORSEG_HUB_REPO        Hub model repo to fetch weights from, falling back to weights/ offline
    COLORSEG_HUB_REVISION    branch, tag or commit of that repo
    COLORSEG_DATA_DIR        local data whose validation images become examples (default data/, ../shared/data)
    COLORSEG_DEVICE          cpu, cuda, ... (default: cuda when present)
    COLORSEG_CONCURRENCY     inference requests run at once (default 2)
    COLORSEG_TORCH_THREADS   torch threads per request (default 1)

``demo`` is built at import (models loaded once) and launched only when run as a script,
so tests and Spaces can import it. Weights that are missing or damaged do not stop the
app: the affected tab says what is wrong and how to regenerate them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from gradio_client import utils as gr_client_utils
import numpy as np
import torch
from PIL import Image

from colorseg import colorize as colourizing
from colorseg.cifar import DataError
from colorseg.colour_models import COLOUR_MODEL_NAMES
from colorseg.hub import resolve_weights_dir
from colorseg.image_io import ImageLoadError, LoadedImage, load_image, load_mask
from colorseg.layer_stats import LayerTable, layer_table
from colorseg.registry import create_model
from colorseg.seg_data import find_pairs, is_validation
from colorseg.seg_losses import per_image_metrics
from colorseg.weights_io import DEFAULT_WEIGHTS_DIR, REGENERATE_HINT, WeightsError

REPO = Path(__file__).resolve().parent
EXAMPLES_DIR = REPO / "examples"
REPORTS_DIR = REPO / "reports"
# Local data folders whose validation images become extra examples (read in place, never copied).
DATA_DIRS = [Path(os.environ["COLORSEG_DATA_DIR"])] if os.environ.get("COLORSEG_DATA_DIR") else [
    REPO / "data",
    REPO.parent / "shared" / "data",
]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}

# The queue runs this many inference requests at once. Each uses one torch thread: on a
# 2-core machine shared with other work, two intra-op threads per request made the colour
# nets about 10x slower (measured: 20 ms -> 250 ms per net), while one thread per request
# keeps both cores busy with two requests and latency steady.
CONCURRENCY = int(os.environ.get("COLORSEG_CONCURRENCY", "2"))
TORCH_THREADS = int(os.environ.get("COLORSEG_TORCH_THREADS", "1"))
QUEUE_SIZE = 64  # requests waiting beyond this are refused at once ("queue full") instead of timing out

# One colour per segmentation head, the same in overlays, the disagreement map and the legend.
HEAD_COLOURS = {"cross_entropy": (255, 127, 14), "soft_iou": (31, 119, 180)}
HEAD_TITLES = {"cross_entropy": "Cross-entropy head", "soft_iou": "Soft-IoU head"}
SHOW_BOTH, SHOW_CE, SHOW_IOU = "Both heads", "Cross-entropy head only", "Soft-IoU head only"
# Best net first: the before/after slider shows the best one that was chosen.
NET_PREFERENCE = ("UNet", "ConvTransposeNet", "PoolUpsampleNet")


# ----------------------------------------------------------------------------- models


@dataclass
class Models:
    """Everything loaded once at start-up; a part that failed to load says why in its ``*_problem``."""

    weights_dir: Path
    source: str  # where the weights came from, for the Model tab
    colour: colourizing.ColourModels | None = None
    colour_problem: str | None = None
    segmenter: Any = None  # colorseg.segment.Segmenter
    segment_problem: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def _regenerate(reason: str) -> str:
    return f"{reason}\n\nRegenerate the weights with `{REGENERATE_HINT}` (see README.md), then restart the app."


def hide_server_paths(text: str | None, weights_dir: Path) -> str | None:
    """``text`` with the weights folder's server path dropped: files are named relative to it,
    and the folder itself by its own name."""
    if not text:
        return text
    for folder in sorted({str(weights_dir), os.path.abspath(weights_dir), os.path.realpath(weights_dir)}, key=len,
                         reverse=True):
        text = text.replace(folder + os.sep, "").replace(folder, f"{Path(folder).name}{os.sep}")
    return text


def load_models(weights_dir: str | Path | None = None, device: str | None = None) -> Models:
    """Load the palette, colour nets and segmenter from ``weights_dir`` (default: env, Hub, weights/)."""
    if weights_dir is None and os.environ.get("COLORSEG_WEIGHTS_DIR"):
        weights_dir = os.environ["COLORSEG_WEIGHTS_DIR"]
    if weights_dir is None:
        source = resolve_weights_dir(DEFAULT_WEIGHTS_DIR)
        weights_dir, message = source.directory, source.message
    else:
        weights_dir = Path(weights_dir)
        message = f"Weights from the folder {weights_dir}."
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device or os.environ.get("COLORSEG_DEVICE") or default_device)
    models = Models(weights_dir=Path(weights_dir), source=message, device=device)

    try:
        models.colour = colourizing.load_colourizers(weights_dir, device)
        if not models.colour.nets:
            models.colour_problem = _regenerate(
                "No colourization net could be loaded:\n\n"
                + "\n".join(f"- {why}" for why in models.colour.problems.values())
            )
    except WeightsError as error:
        models.colour_problem = _regenerate(f"The colour palette could not be loaded: {error}")

    try:
        from colorseg.segment import load_segmenter

        models.segmenter = load_segmenter(weights_dir, device=str(device))
    except WeightsError as error:
        models.segment_problem = _regenerate(f"The segmentation weights could not be loaded: {error}")
    except Exception as error:  # noqa: BLE001 - the segmenter is its own module: nothing in it may take the app down
        models.segment_problem = _regenerate(
            f"The segmentation model could not be set up ({type(error).__name__}: {error})."
        )
    # Visitors see files relative to the weights folder, never the server's own paths.
    hide = lambda text: hide_server_paths(text, models.weights_dir)  # noqa: E731
    models.source = hide(models.source)
    models.colour_problem, models.segment_problem = hide(models.colour_problem), hide(models.segment_problem)
    if models.colour is not None:
        models.colour.problems = {name: hide(why) for name, why in models.colour.problems.items()}
    return models


# ----------------------------------------------------------------------------- pictures


# The one answer to any file path that was not uploaded to this app: the same words whether
# the path exists or not, and nothing of the path itself.
REFUSED_PATH = "This app can only read files uploaded to this app: upload the photo (or mask) instead."


class ReadableFiles:
    """The files a request may name: what gradio stored for this app (uploads, data: URLs it
    decoded, examples it cached), all under its upload/cache folder, and the example files themselves.

    gradio checks paths only of payloads that carry its FileData marker; an API caller can send
    {"path": "/etc/..."} without it and the handler would open any file the server can read.
    Paths are resolved (symlinks and ..) before the check and checked before anything opens them.
    """

    def __init__(self, examples: list[Path] | tuple[Path, ...] = (), folders: list[Path] | tuple[Path, ...] = ()):
        self.examples: set[Path] = set()
        self.folders = [Path(os.path.realpath(folder)) for folder in folders]  # beyond gradio's own
        self.add_examples(examples)

    def add_examples(self, examples) -> None:
        self.examples |= {Path(os.path.realpath(p)) for p in examples if p}

    def folder_list(self) -> list[Path]:
        # Read at every call: GRADIO_TEMP_DIR may be set after import (tests do), and the Blocks' own
        # cache folder is inside it.
        return [Path(os.path.realpath(gr.utils.get_upload_folder())), *self.folders]

    def allows(self, path: str | os.PathLike) -> bool:
        try:
            resolved = Path(os.path.realpath(os.fspath(path)))
        except (TypeError, ValueError, OSError):
            return False
        if resolved in self.examples:
            return True
        return any(resolved != folder and resolved.is_relative_to(folder) for folder in self.folder_list())

    def check(self, path: str | None) -> str | None:
        if path and not self.allows(path):
            raise gr.Error(REFUSED_PATH)
        return path


READABLE = ReadableFiles()


def _read(image: str | None, readable: ReadableFiles = READABLE) -> LoadedImage:
    if not image:
        raise gr.Error("No photo yet: upload, paste or take one, or click an example below.")
    readable.check(image)
    try:
        return load_image(image)
    except ImageLoadError as error:
        raise gr.Error(str(error)) from None


def grey_picture(grey: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W, 3]."""
    return np.repeat((grey * 255 + 0.5).astype(np.uint8)[:, :, None], 3, axis=2)


# matplotlib's viridis, dark purple (unsure) to yellow (sure), from five of its stops as a
# 256-entry lookup table: one indexing per pixel instead of float interpolation.
_VIRIDIS_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float32)
_VIRIDIS = np.stack(
    [np.interp(np.linspace(0, 4, 256), np.arange(5), _VIRIDIS_STOPS[:, channel]) for channel in range(3)], axis=1
).round().astype(np.uint8)


def colour_map(values: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W, 3] with the viridis ramp."""
    return _VIRIDIS[(np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8)]


def _boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` px of its edge (erosion by shifting), bool [H, W]."""
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def overlay(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """The photo with the background dimmed, the object lightly tinted and outlined in ``colour``."""
    tint = np.array(colour, dtype=np.float32)
    out = rgb.astype(np.float32) * 0.35
    out[mask] = rgb[mask] * 0.75 + tint * 0.25
    out[_boundary(mask, max(1, max(mask.shape) // 256))] = tint
    return out.astype(np.uint8)


def disagreement_map(rgb: np.ndarray, mask_ce: np.ndarray, mask_iou: np.ndarray) -> np.ndarray:
    """The photo dimmed to grey; object pixels of only one head in that head's colour, of both in white."""
    grey = rgb.astype(np.float32).mean(axis=2, keepdims=True) * 0.4
    out = np.repeat(grey, 3, axis=2)
    for where, colour in (
        (mask_ce & mask_iou, (255, 255, 255)),
        (mask_ce & ~mask_iou, HEAD_COLOURS["cross_entropy"]),
        (mask_iou & ~mask_ce, HEAD_COLOURS["soft_iou"]),
    ):
        out[where] = out[where] * 0.3 + np.array(colour, dtype=np.float32) * 0.7
    return out.astype(np.uint8)


def mask_picture(mask: np.ndarray) -> np.ndarray:
    """bool [H, W] -> uint8 [H, W] 0/255, saved as a lossless PNG for download."""
    return mask.astype(np.uint8) * 255


def mask_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU, the assignment's thresholded mIoU and pixel accuracy of one predicted mask."""
    scores = per_image_metrics(torch.from_numpy(pred)[None], torch.from_numpy(target)[None])
    return {name: float(values[0]) for name, values in scores.items()}


# ----------------------------------------------------------------------------- examples and report


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _sample_photos() -> list[Path]:
    """Photos shipped in the repository, plus matplotlib's public-domain portrait when installed."""
    photos = _images_in(EXAMPLES_DIR)
    # Found without importing matplotlib (0.6 s of start-up): mpl-data/ sits in its package folder.
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        portrait = Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if portrait.is_file():
            photos.append(portrait)
    return photos


def _cifar_validation(limit: int) -> list[Path]:
    """CIFAR-10 test horses (the colour nets' validation set) from a local image-folder dump."""
    for root in DATA_DIRS:
        for folder in (root / "cifar10-images", root / "cifar10", root):
            photos = _images_in(folder / "test" / "horse")
            if photos:
                return photos[:limit]
    return []


def _segmentation_validation(limit: int) -> list[tuple[Path, Path]]:
    """Validation photo/mask pairs (segmentation's own split rule) from a local data folder."""
    for root in DATA_DIRS:
        for folder in (root / "weizmann_horse_db", root):
            if not folder.is_dir():
                continue
            try:
                _, pairs = find_pairs(folder)
            except (DataError, OSError):
                continue
            return [(pair.image, pair.mask) for pair in pairs if is_validation(pair.name)][:limit]
    return []


def _report_dirs(weights_dir: Path) -> list[Path]:
    # A Hub snapshot carries the report inside the weights folder; a local run writes reports/.
    return [d for d in (weights_dir / "reports", REPORTS_DIR) if d.is_dir()]


def _format_metrics(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in metrics.items()
        if isinstance(value, (int, float, str))
    )


def _described_parts(description: dict[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, weight description) for every dict naming an architecture in a nested description,
    such as the segmenter's {"body": {...}, "heads": {"cross_entropy": {...}, ...}}."""
    parts = []
    for key, part in description.items():
        if isinstance(part, dict) and "architecture" in part:
            parts.append((f"{prefix} {key}", part))
        elif isinstance(part, dict):
            parts += _described_parts(part, prefix)
    return parts


def _without_server_paths(value: Any) -> Any:
    """The training report as shown to visitors: absolute paths (data folders, weight files) by their name."""
    if isinstance(value, dict):
        return {key: _without_server_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_server_paths(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value) and "\n" not in value:
        return Path(value).name
    return value


def weights_report(models: Models) -> tuple[str, list[tuple[str, str]], dict[str, Any] | None]:
    """Markdown table of the weights in use, curve images and the training report JSON."""
    described = list(models.colour.descriptions.items()) if models.colour else []
    if models.segmenter is not None:
        described += _described_parts(getattr(models.segmenter, "description", None) or {}, "segmentation")
    rows = [f"{models.source} Running on {models.device}.", "",
            "| Model | Architecture | Final metrics | Trained with |", "| --- | --- | --- | --- |"]
    for name, description in described:
        command = description.get("command")
        rows.append(
            f"| {name} | {description.get('architecture', '')} | {_format_metrics(description.get('metrics') or {})} "
            f"| {f'`{command}`' if command else ''} |"
        )
    if not described:
        rows.append(f"| (none loaded) | | | run `{REGENERATE_HINT}` |")
    curves, report = [], None
    for folder in _report_dirs(models.weights_dir):
        curves += [(str(p), p.stem.replace("_", " ")) for p in sorted(folder.glob("*.png"))]
        path = folder / "training_report.json"
        if report is None and path.is_file():
            try:
                report = _without_server_paths(json.loads(path.read_text()))
            except (UnicodeDecodeError, json.JSONDecodeError):
                report = {"error": f"{path.name} is not valid JSON"}
    return "\n".join(rows), curves, report


class PictureStore:
    """Writes each result picture once, to a new file in gradio's cache folder, and returns its path.

    Handing gradio numpy arrays makes it encode them into a content-addressed file that it
    rewrites in place when another request produces the same picture: two users running
    the same example at once then download each other's half-written file (the load test
    failed 5 of 80 requests that way). A fresh file per picture is never rewritten; inside
    gradio's cache folder it is served as it is; :meth:`sweep` deletes it after ``max_age_s``.
    JPEG (quality 90) keeps photos small and fast to encode (1 ms against 120 ms for PNG at
    512x512); masks are PNG, lossless.
    """

    def __init__(self, directory: str | Path, max_age_s: float = 3600.0, sweep_every_s: float = 60.0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Pictures older than max_age_s are deleted, checked at most every sweep_every_s: gradio's
        # delete_cache covers only files it created itself, and a busy Space must not fill its disk.
        self.max_age_s, self.sweep_every_s = max_age_s, sweep_every_s
        self._last_sweep = 0.0

    def sweep(self, now: float | None = None) -> int:
        """Delete this store's pictures older than ``max_age_s``; returns how many went."""
        now = time.time() if now is None else now
        self._last_sweep = now
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return 0
        for entry in entries:
            try:
                if entry.is_file() and now - entry.stat().st_mtime > self.max_age_s:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue  # another worker removed it first
        return removed

    def save(self, picture: np.ndarray, lossless: bool = False) -> str:
        if time.time() - self._last_sweep > self.sweep_every_s:
            self.sweep()
        path = self.directory / f"{uuid.uuid4().hex}.{'png' if lossless else 'jpg'}"
        if lossless:
            Image.fromarray(picture).save(path, format="PNG", compress_level=1)
        else:
            Image.fromarray(picture).save(path, format="JPEG", quality=90)
        return str(path)


# ----------------------------------------------------------------------------- handlers


class Handlers:
    """The functions behind the buttons and the API; models come loaded."""

    def __init__(self, models: Models, store: PictureStore, readable: ReadableFiles = READABLE):
        self.models = models
        self.store = store
        self.readable = readable  # the files a request may name (uploads, examples)

    @torch.inference_mode()
    def colorize(
        self,
        image: str | None,
        networks: list[str] | None = None,
        working_size: float = colourizing.DEFAULT_WORKING_SIZE,
        decoding: str = colourizing.DEFAULT_DECODING,
        temperature: float = colourizing.DEFAULT_TEMPERATURE,
    ) -> tuple[list[tuple[str, str]], tuple[str, str], list[tuple[str, str]], str]:
        """Greyscale + each net's colourization (+ the original), before/after pair, confidence maps, notes;
        pictures as (path, caption) / path."""
        if self.models.colour is None or not self.models.colour.nets:
            raise gr.Error(self.models.colour_problem or "Colourization is unavailable.")
        loaded = _read(image, self.readable)
        available = self.models.colour.nets
        networks = [n for n in COLOUR_MODEL_NAMES if n in (networks if networks is not None else available)]
        if not networks:
            raise gr.Error("Tick at least one network to colourize with.")
        missing = [n for n in networks if n not in available]
        if missing:
            raise gr.Error(f"{', '.join(missing)} is not loaded: {self.models.colour.problems.get(missing[0], '')}")
        if decoding not in colourizing.DECODINGS:
            raise gr.Error(f"Decoding must be one of: {', '.join(colourizing.DECODINGS)}.")
        size = int(np.clip(working_size, colourizing.MIN_WORKING_SIZE, colourizing.MAX_WORKING_SIZE))

        started = time.perf_counter()
        grey = colourizing.greyscale(loaded.rgb)
        results = colourizing.colourize(self.models.colour, grey, networks, size, decoding, float(temperature))
        seconds = time.perf_counter() - started

        save = self.store.save
        grey_path = save(grey_picture(grey))
        gallery = [(grey_path, "Greyscale input")]
        gallery += [(save(result.rgb), name) for name, result in results.items()]
        if loaded.is_colour:
            gallery.append((save(loaded.rgb), "Original colours"))
        best = next(n for n in NET_PREFERENCE if n in results)
        best_path = gallery[1 + list(results).index(best)][0]
        confidence = [(save(colour_map(r.confidence)), f"{name}: confidence") for name, r in results.items()]
        width, height = loaded.rgb.shape[1], loaded.rgb.shape[0]
        work_w, work_h = results[best].working_size
        notes = [(
            f"Colourized {width}×{height} px with {', '.join(results)} in {seconds * 1000:.0f} ms "
            f"(colour predicted at {work_w}×{work_h}, {decoding} decoding). The slider compares the greyscale "
            f"input with **{best}**."
        )]
        if not loaded.is_colour:
            notes.append("The upload had no colour, so there is no original to compare with.")
        notes += [f"Note: {note}." for note in loaded.notes]
        return gallery, (grey_path, best_path), confidence, "\n\n".join(notes)

    @torch.inference_mode()
    def segment(
        self, image: str | None, ground_truth: str | None = None
    ) -> tuple[str, str, str, str, str, list[list[str]], str]:
        """Overlays and masks of both heads (paths), their disagreement, scores against a ground truth, notes."""
        if self.models.segmenter is None:
            raise gr.Error(self.models.segment_problem or "Segmentation is unavailable.")
        loaded = _read(image, self.readable)
        target = None
        if ground_truth:
            self.readable.check(ground_truth)
            try:
                target = load_mask(ground_truth, (loaded.rgb.shape[1], loaded.rgb.shape[0]))
            except ImageLoadError as error:
                raise gr.Error(f"Ground-truth mask: {error}") from None

        started = time.perf_counter()
        try:
            result = self.models.segmenter.predict(loaded.rgb)
        except (RuntimeError, ValueError) as error:
            raise gr.Error(f"Segmentation failed on this image ({error}).") from None
        seconds = time.perf_counter() - started

        masks = {"cross_entropy": np.asarray(result.mask_cross_entropy, bool),
                 "soft_iou": np.asarray(result.mask_soft_iou, bool)}
        table = []
        for head, mask in masks.items():
            row = [HEAD_TITLES[head], f"{mask.mean():.1%}"]
            if target is None:
                row += ["—", "—", "—"]
            else:
                scores = mask_scores(mask, target)
                row += [f"{scores['iou']:.3f}", f"{scores['miou_thresholded']:.1f}", f"{scores['pixel_accuracy']:.1%}"]
            table.append(row)
        agree = float((masks["cross_entropy"] == masks["soft_iou"]).mean())
        notes = [(
            f"Segmented {loaded.rgb.shape[1]}×{loaded.rgb.shape[0]} px in {seconds * 1000:.0f} ms "
            f"(one body pass, two heads). The heads agree on {agree:.1%} of the pixels."
        )]
        if target is None:
            notes.append("Add the photo's ground-truth mask (white = object) to score each head.")
        notes += [f"Note: {note}." for note in loaded.notes]
        save = self.store.save
        return (
            save(overlay(loaded.rgb, masks["cross_entropy"], HEAD_COLOURS["cross_entropy"])),
            save(overlay(loaded.rgb, masks["soft_iou"], HEAD_COLOURS["soft_iou"])),
            save(mask_picture(masks["cross_entropy"]), lossless=True),
            save(mask_picture(masks["soft_iou"]), lossless=True),
            save(disagreement_map(loaded.rgb, masks["cross_entropy"], masks["soft_iou"])),
            table,
            "\n\n".join(notes),
        )

    def architecture(self, network: str, height: float, width: float) -> tuple[list[list[Any]], str]:
        """Question A.3's table for ``network`` at height × width, from the real module."""
        if network not in COLOUR_MODEL_NAMES:
            raise gr.Error(f"Choose one of {', '.join(COLOUR_MODEL_NAMES)}.")
        height, width = int(height or 0), int(width or 0)
        if height < 4 or width < 4 or height % 4 or width % 4 or max(height, width) > 1024:
            raise gr.Error("Height and width must be multiples of 4 between 4 and 1024 (the nets halve them twice).")
        colour = self.models.colour
        if colour is not None and network in colour.nets:
            constructor = colour.descriptions[network].get("constructor", {})
            origin = "as the loaded weights"
        else:
            constructor, origin = {}, "default settings: no weights loaded for it"
        # A fresh module, not the loaded one: counting hooks on a net that a concurrent
        # request is running would record that request's layers too. Counts need no weights.
        model = create_model(network, **constructor)
        table = layer_table(model, height, width)
        rows = [
            [r.name, r.kind, "×".join(map(str, r.output_shape)), r.outputs, r.weights, r.connections]
            for r in table.rows
        ]
        rows.append(["total", "", "", table.outputs, table.weights, table.connections])
        settings = ", ".join(f"{k}={v}" for k, v in constructor.items()) or "kernel=3, num_filters=32, num_colours=24"
        notes = [(
            f"**{network}** ({settings}, {origin}) on one {height}×{width} greyscale image: "
            f"**{table.outputs:,}** outputs, **{table.weights:,}** weights, **{table.connections:,}** connections."
        )]
        if network == "PoolUpsampleNet" and height == width and height in (32, 64):
            notes.append(_closed_form_check(table, height, model))
        return rows, "\n\n".join(notes)


def _closed_form_check(table: LayerTable, size: int, model: torch.nn.Module) -> str:
    """Compare PoolUpsampleNet's totals with DESIGN.md's closed forms (Question A.3, 32x32 and 64x64)."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    nic, nf, nc = convs[0].in_channels, convs[0].out_channels, convs[-1].out_channels
    scale = (size // 32) ** 2  # outputs grow with the pixel count; weights do not
    outputs = scale * (2880 * nf + 3328 * nc)
    weights = 36 * nf**2 + 9 * nc**2 + 9 * nic * nf + 9 * nf * nc + 12 * nf + 4 * nc
    outputs_formula = "2880·NF + 3328·NC" if scale == 1 else f"{scale}·(2880·NF + 3328·NC)"
    verdict = "match" if (outputs, weights) == (table.outputs, table.weights) else "DO NOT match"
    return (
        f"Closed forms (NIC={nic}, NF={nf}, NC={nc}): outputs = {outputs_formula} = {outputs:,}; "
        f"weights = 36·NF² + 9·NC² + 9·NIC·NF + 9·NF·NC + 12·NF + 4·NC = {weights:,}. "
        f"The hooked module's totals {verdict}."
    )


# ----------------------------------------------------------------------------- layout


def photo_input(**kwargs: Any) -> gr.Image:
    """A gr.Image input whose uploads reach the handler as the uploaded file, undecoded.

    gr.Image opens uploads itself and fails on a non-image file with a bare "Error" before
    any handler runs; colorseg.image_io decodes instead (every mode, EXIF, size cap) and
    turns such files into a sentence the user can act on. (The override is set on the
    instance: subclassing gr.Image would make gradio write an app.pyi stub beside app.py.)
    """
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    decode = image.preprocess

    # gradio copies a payload's file into its cache before preprocess runs, from wherever the
    # payload says (a path in its temp folder or working directory, even a URL, which it would
    # download): the copy itself must be refused. Examples pass, being in READABLE.
    copy, async_copy = image.move_resource_to_block_cache, image.async_move_resource_to_block_cache

    def checked(path: Any) -> None:
        if path is not None and (gr_client_utils.is_http_url_like(str(path)) or not READABLE.allows(path)):
            raise gr.Error(REFUSED_PATH)

    def move_resource_to_block_cache(path: Any) -> Any:
        checked(path)
        return copy(path)

    async def async_move_resource_to_block_cache(path: Any) -> Any:
        checked(path)
        return await async_copy(path)

    image.move_resource_to_block_cache = move_resource_to_block_cache
    image.async_move_resource_to_block_cache = async_move_resource_to_block_cache

    def undecoded(payload: Any) -> Any:  # gradio's ImageData in, a file path out
        # Only a path inside this app's upload/cache folders (or an example) goes on; the
        # handlers check again, for callers of the functions themselves.
        if payload is None or payload.path is None:
            if payload is not None and not (payload.url or "").startswith("data:"):
                raise gr.Error(REFUSED_PATH)  # a bare URL: never fetched or opened
            return READABLE.check(decode(payload))  # data: URLs, which gr.Image turns into a file
        return READABLE.check(str(payload.path))

    image.preprocess = undecoded
    return image


INTRO = """# colorseg
Colourize black-and-white photos with the three CNNs of the CSC413 colourization assignment,
and find the horse in a photo with two DeepLabV3 heads trained with different losses."""

COLOUR_HELP = """**1.** Upload, paste or take a photo, or click an example below (a colour photo is turned grey
first, so you can compare with its real colours). **2.** Choose networks. **3.** Press **Colourize**.

The networks were trained on 32×32 photos of horses from CIFAR-10: expect brown horses, green
grass and blue-grey skies, and muted guesses elsewhere."""

SEGMENT_HELP = """**1.** Upload, paste or take a photo, or click an example below. **2.** Optionally add its
ground-truth mask (white = object) to score both heads. **3.** Press **Segment**.

Both heads share one DeepLabV3 body and differ only in their last 1×1 convolution, trained with
cross-entropy (<span style="color:#ff7f0e">■ orange</span>) or with a soft-IoU loss
(<span style="color:#1f77b4">■ blue</span>). They were trained on horse photos."""

MODEL_HELP = """### Question A.3: outputs, weights and connections of every layer
Measured with forward hooks on the real module for any input size. Connections: for each output
value, the inputs it reads (+1 for a bias); a transposed convolution counts only the inputs that
really contribute. ReLU is not counted as a layer."""


def _shown_heads(choice: str) -> tuple[gr.Column, gr.Column]:
    """Visibility of the cross-entropy and soft-IoU columns for the "Show" choice (no recomputation)."""
    return gr.Column(visible=choice != SHOW_IOU), gr.Column(visible=choice != SHOW_CE)


def build_demo(weights_dir: str | Path | None = None, device: str | None = None) -> gr.Blocks:
    """Load the models once and lay out the three tabs; the queue is configured, nothing is launched."""
    torch.set_num_threads(TORCH_THREADS)
    models = load_models(weights_dir, device)
    # In gradio's cache folder (GRADIO_TEMP_DIR), so that gradio serves and deletes the pictures.
    handlers = Handlers(models, PictureStore(Path(gr.utils.get_upload_folder()) / "colorseg"))
    nets = list(models.colour.nets) if models.colour else []
    report_markdown, curves, report = weights_report(models)
    colour_examples = _sample_photos() + _cifar_validation(limit=4)
    # Horses with their masks first: the heads were trained on horses, and a mask shows the scores.
    segment_examples = [[str(photo), str(mask)] for photo, mask in _segmentation_validation(limit=4)]
    segment_examples += [[str(p), None] for p in _sample_photos()]
    # The only files outside gradio's upload/cache folder that a request may name.
    READABLE.add_examples(colour_examples + [path for row in segment_examples for path in row if path])

    # No usage statistics: the app runs offline as often as not, and its users did not opt in.
    # delete_cache: every hour, delete result pictures older than an hour.
    with gr.Blocks(title="colorseg: colourize and segment", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Colourize", id="colourize"):
                if models.colour_problem:
                    gr.Markdown(f"⚠️ **Colourization is unavailable.** {models.colour_problem}")
                elif models.colour and models.colour.problems:
                    gr.Markdown(_regenerate("⚠️ **Some networks are unavailable:**\n\n" + "\n".join(
                        f"- {name}: {why}" for name, why in models.colour.problems.items()
                    )))
                gr.Markdown(COLOUR_HELP)
                with gr.Row():
                    with gr.Column(scale=2):
                        colour_image = photo_input(
                            label="Photo", sources=["upload", "clipboard", "webcam"], height=300, elem_id="colour-photo"
                        )
                        networks = gr.CheckboxGroup(nets, value=nets, label="Networks")
                        colour_button = gr.Button("Colourize", variant="primary", interactive=bool(nets))
                        with gr.Accordion("Settings", open=False):
                            working_size = gr.Slider(
                                colourizing.MIN_WORKING_SIZE, colourizing.MAX_WORKING_SIZE,
                                value=colourizing.DEFAULT_WORKING_SIZE, step=4, label="Working size (px)",
                                info="Longest side the networks see; the colour is then carried onto your "
                                "full-size photo.",
                            )
                            decoding = gr.Radio(
                                list(colourizing.DECODINGS), value=colourizing.DEFAULT_DECODING, label="Decoding",
                                info="annealed mean: smooth colours; argmax: the single likeliest of the 24 colours.",
                            )
                            temperature = gr.Slider(
                                0.05, 1.0, value=colourizing.DEFAULT_TEMPERATURE, step=0.01, label="Temperature",
                                info="Annealed mean only: lower gives bolder colours, 1 the plain mean.",
                            )
                        gr.Examples(colour_examples, inputs=[colour_image], label="Examples (click one)",
                                    examples_per_page=12)
                    with gr.Column(scale=3):
                        colour_slider = gr.ImageSlider(label="Before / after: drag the handle", max_height=460)
                        colour_notes = gr.Markdown()
                # Full width, one row: greyscale, up to three nets and the original side by side.
                colour_gallery = gr.Gallery(
                    label="Side by side (click one to enlarge)", columns=5, fit_columns=False, object_fit="contain",
                    height=320, elem_id="colour-results",
                )
                with gr.Accordion("Confidence maps (yellow = sure of the colour, purple = unsure)", open=False):
                    confidence = gr.Gallery(
                        label="Confidence, at the working size", columns=5, fit_columns=False, object_fit="contain",
                        height=300,
                    )

            with gr.Tab("Segment", id="segment"):
                if models.segment_problem:
                    gr.Markdown(f"⚠️ **Segmentation is unavailable.** {models.segment_problem}")
                gr.Markdown(SEGMENT_HELP)
                with gr.Row():
                    with gr.Column(scale=2):
                        segment_image = photo_input(
                            label="Photo", sources=["upload", "clipboard", "webcam"], height=300,
                            elem_id="segment-photo",
                        )
                        ground_truth = photo_input(
                            label="Ground-truth mask (optional)", sources=["upload"], height=160, elem_id="segment-mask"
                        )
                        segment_button = gr.Button(
                            "Segment", variant="primary", interactive=models.segmenter is not None
                        )
                        gr.Examples(segment_examples, inputs=[segment_image, ground_truth],
                                    label="Examples (click one)", examples_per_page=6)
                    with gr.Column(scale=3):
                        show = gr.Radio([SHOW_BOTH, SHOW_CE, SHOW_IOU], value=SHOW_BOTH, label="Show", container=False)
                        # Fixed heights: small photos would otherwise be shown at their own few pixels.
                        with gr.Row():
                            with gr.Column() as ce_column:
                                overlay_ce = gr.Image(
                                    label=HEAD_TITLES["cross_entropy"], height=280, elem_id="overlay-ce"
                                )
                                mask_ce = gr.Image(label="Cross-entropy mask (PNG)", height=180, buttons=["download"])
                            with gr.Column() as iou_column:
                                overlay_iou = gr.Image(
                                    label=HEAD_TITLES["soft_iou"], height=280, elem_id="overlay-iou"
                                )
                                mask_iou = gr.Image(label="Soft-IoU mask (PNG)", height=180, buttons=["download"])
                        disagreement = gr.Image(
                            label="Where they differ: orange = only cross-entropy, blue = only soft-IoU, white = both",
                            height=280, elem_id="disagreement",
                        )
                        scores = gr.Dataframe(
                            headers=["Head", "Object pixels", "IoU", "Thresholded mIoU", "Pixel accuracy"],
                            label="Scores (IoU columns need a ground-truth mask)", interactive=False,
                        )
                        segment_notes = gr.Markdown()

            with gr.Tab("Model", id="model"):
                gr.Markdown(MODEL_HELP)
                with gr.Row():
                    network = gr.Dropdown(list(COLOUR_MODEL_NAMES), value="PoolUpsampleNet", label="Network")
                    height = gr.Number(32, label="Input height (multiple of 4)", precision=0, step=4, minimum=4,
                                       maximum=1024)
                    width = gr.Number(32, label="Input width (multiple of 4)", precision=0, step=4, minimum=4,
                                      maximum=1024)
                    count_button = gr.Button("Count", variant="primary")
                layers = gr.Dataframe(
                    headers=["Layer", "Type", "Output (C×H×W)", "Outputs", "Weights", "Connections"],
                    label="Per layer", interactive=False, max_height=720,
                )
                layers_notes = gr.Markdown()
                gr.Markdown("### Training report of the weights in use")
                gr.Markdown(report_markdown)
                if curves:
                    gr.Gallery(curves, label="Training curves", columns=2, object_fit="contain", height="auto")
                if report is not None:
                    with gr.Accordion("Full training report (JSON)", open=False):
                        gr.JSON(report)

        # ------------------------------------------------------------------ events
        # Both endpoints share one pool of CONCURRENCY workers: they compete for the same cores.
        inference = {"concurrency_limit": CONCURRENCY, "concurrency_id": "inference"}
        colour_button.click(
            handlers.colorize,
            inputs=[colour_image, networks, working_size, decoding, temperature],
            outputs=[colour_gallery, colour_slider, confidence, colour_notes],
            api_name="colorize",
            **inference,
            api_description="Colourize a photo: greyscale input, each net's result (and the original), "
            "a before/after pair, confidence maps, notes.",
        )
        segment_button.click(
            handlers.segment,
            inputs=[segment_image, ground_truth],
            outputs=[overlay_ce, overlay_iou, mask_ce, mask_iou, disagreement, scores, segment_notes],
            api_name="segment",
            **inference,
            api_description="Segment a photo with both heads: overlays, masks, disagreement map, scores, notes.",
        )
        show.change(
            _shown_heads,
            inputs=show,
            outputs=[ce_column, iou_column],
            api_visibility="private",
            queue=False,
        )
        count = {"fn": handlers.architecture, "inputs": [network, height, width], "outputs": [layers, layers_notes]}
        count_button.click(**count, api_name="layer_table")
        network.change(**count, api_visibility="private")
        demo.load(**count, api_visibility="private")

    demo.queue(max_size=QUEUE_SIZE)
    return demo


demo = build_demo()

if __name__ == "__main__":
    # Host and port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default 127.0.0.1:7860); no share
    # link unless GRADIO_SHARE=True. Photos are capped at 4096 px anyway: refuse uploads over 50 MB
    # before they are stored.
    demo.launch(max_file_size="50mb")
