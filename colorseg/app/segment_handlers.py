"""The Segment tab's handlers (and the /segment endpoint): both heads of a task on one body pass,
masks, overlays and scores; with a mask, each head's errors, IoU-against-threshold and calibration."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from typing import Any

import gradio as gr
import numpy as np
import torch

from colorseg.app import examples, render
from colorseg.app.render import HEAD_TITLES
from colorseg.app.store import Context, download_name
from colorseg.app.uploads import read_mask, read_photo, user_error
from colorseg.segmentation.explain import (
    HEAD_COLOURS,
    calibration_chart,
    calibration_curve,
    curve_chart,
    iou_threshold_curve,
)
from colorseg.segmentation.inference import DEFAULT_TASK
from colorseg.segmentation.losses import MASK_THRESHOLD, per_image_metrics
from colorseg.segmentation.sources import SEG_TASKS

SCORE_HEADERS = ["Head", "Object pixels", "IoU", "Thresholded mIoU", "Pixel accuracy"]
# Scored against one of the shipped U²-Net-p masks: a reference model's answer, not ground truth.
REFERENCE_HEADERS = ["Head", "Object pixels", "Agreement with U²-Net-p (IoU)", "Thresholded", "Pixels agreeing"]

# The tasks a segmenter may have heads for (colorseg.segmentation.sources.SEG_TASKS), as the radio names them.
TASK_LABELS = dict(zip(SEG_TASKS, ("Any object", "Flowers (the assignment's Part D)", "Horses")))

SegmentOutputs = tuple[str, str, str, str, str, list[list[str]], str]


def mask_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU, the assignment's thresholded mIoU and pixel accuracy of one predicted mask."""
    scores = per_image_metrics(torch.from_numpy(pred)[None], torch.from_numpy(target)[None])
    return {name: float(values[0]) for name, values in scores.items()}


def _digest(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


# The shipped U²-Net-p masks, known by content: a click on an example reaches the handler as gradio's
# copy of the file, and a user may upload the same file again.
REFERENCE_DIGESTS = {_digest(path) for path in sorted(examples.REFERENCE_MASKS.glob("*.png"))}


def is_reference(mask_path: str | None) -> bool:
    """Whether the mask is one of U²-Net-p's shipped masks (agreement, not ground truth)."""
    return bool(mask_path) and _digest(mask_path) in REFERENCE_DIGESTS


def score_rows(masks: dict[str, np.ndarray], target: np.ndarray | None) -> list[list[str]]:
    table = []
    for head, mask in masks.items():
        row = [HEAD_TITLES[head], f"{mask.mean():.1%}"]
        if target is None:
            row += ["—", "—", "—"]
        else:
            scores = mask_scores(mask, target)
            row += [f"{scores['iou']:.3f}", f"{scores['miou_thresholded']:.1f}", f"{scores['pixel_accuracy']:.1%}"]
        table.append(row)
    return table


def task_choices(segmenter: object) -> list[tuple[str, str]]:
    """(label, task) for the tasks the loaded segmenter has heads for, in TASK_LABELS' order;
    all of them (for a disabled radio) when no segmenter loaded."""
    tasks = tuple(getattr(segmenter, "tasks", ())) or tuple(TASK_LABELS)
    ordered = [t for t in TASK_LABELS if t in tasks] + [t for t in tasks if t not in TASK_LABELS]
    return [(TASK_LABELS.get(task, task), task) for task in ordered]


def _namer(image: str, task: str):
    """Download names for one photo and task: <photo stem>_<task>_<what>."""
    return lambda what: download_name(image, f"{task}_{what}")


class SegmentHandlers:
    """The Segment tab's functions (and the /segment endpoint); models come loaded."""

    RECENT = 4  # photos whose probabilities are kept for the extras that follow each /segment call

    def __init__(self, context: Context):
        self.context = context
        self._recent: OrderedDict[tuple[str, str], dict[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def cached_probabilities(self, image: str, rgb: np.ndarray, task: str) -> dict[str, np.ndarray]:
        """:meth:`probabilities`, remembered for the last few (photo, task): the extras that follow a
        /segment call reuse its body pass. Uploads are content-addressed files: a path is a picture."""
        with self._lock:
            probs = self._recent.get((os.path.realpath(image), task))
        return self._remember(image, task, self.probabilities(rgb, task)) if probs is None else probs

    def _remember(self, image: str, task: str, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = (os.path.realpath(image), task)
        with self._lock:
            self._recent[key] = probs
            self._recent.move_to_end(key)  # newest last, also when the key was there already
            while len(self._recent) > self.RECENT:
                self._recent.popitem(last=False)
        return probs

    def probabilities(self, rgb: np.ndarray, task: str) -> dict[str, np.ndarray]:
        """{loss: float32 [H, W]} of ``task``'s two heads, from one body pass."""
        models = self.context.models
        if models.segmenter is None:
            raise user_error(models.segment_problem or "Segmentation is unavailable.")
        if task not in models.segmenter.tasks:
            offered = ", ".join(f"{task!r} ({label})" for label, task in task_choices(models.segmenter))
            raise user_error(f"These weights have no heads for {task!r}; choose one of {offered}.")
        try:
            probs = models.segmenter.probabilities(rgb, None, (task,))[task]
        except (RuntimeError, ValueError) as error:
            raise user_error(f"Segmentation failed on this image ({error}).") from None
        return {loss: np.asarray(probs[loss].float().cpu().numpy(), np.float32) for loss in HEAD_TITLES}

    @torch.inference_mode()
    def segment(self, image: str | None, ground_truth: str | None = None, task: str = DEFAULT_TASK) -> SegmentOutputs:
        """Overlays and masks of ``task``'s two heads (paths), their disagreement, scores against a
        ground truth, notes."""
        models = self.context.models
        if models.segmenter is None:
            raise user_error(models.segment_problem or "Segmentation is unavailable.")
        loaded = read_photo(image, self.context.readable)
        target = read_mask(ground_truth, (loaded.rgb.shape[1], loaded.rgb.shape[0]), self.context.readable)
        started = time.perf_counter()
        # Always a fresh body pass, so that the time shown is the model's; the extras reuse it.
        probs = self._remember(image, task, self.probabilities(loaded.rgb, task))
        seconds = time.perf_counter() - started

        masks = {loss: prob > MASK_THRESHOLD for loss, prob in probs.items()}
        agree = float((masks["cross_entropy"] == masks["soft_iou"]).mean())
        reference = target is not None and is_reference(ground_truth)
        notes = [
            (
                f"Segmented {loaded.rgb.shape[1]}×{loaded.rgb.shape[0]} px in {seconds * 1000:.0f} ms looking for "
                f"**{TASK_LABELS.get(task, task)}** (one body pass, two heads). The heads agree on {agree:.1%} "
                "of the pixels."
            )
        ]
        if target is None:
            notes.append("Add the photo's ground-truth mask (white = object) to score each head.")
        elif reference:
            notes.append(
                "The mask is **U²-Net-p's** answer (rembg's model), not ground truth: the scores say how far each "
                "head **agrees with U²-Net-p**, not how right it is."
            )
        notes += [f"Note: {note}." for note in loaded.notes]
        save, rgb, name = self.context.store.save, loaded.rgb, _namer(image, task)
        headers = REFERENCE_HEADERS if reference else SCORE_HEADERS
        return (
            save(render.overlay(rgb, masks["cross_entropy"], HEAD_COLOURS["cross_entropy"]), name=name("ce_overlay")),
            save(render.overlay(rgb, masks["soft_iou"], HEAD_COLOURS["soft_iou"]), name=name("soft_iou_overlay")),
            save(render.mask_picture(masks["cross_entropy"]), lossless=True, name=name("ce_mask")),
            save(render.mask_picture(masks["soft_iou"]), lossless=True, name=name("soft_iou_mask")),
            save(render.disagreement_map(rgb, masks["cross_entropy"], masks["soft_iou"]), name=name("disagreement")),
            {"headers": headers, "data": score_rows(masks, target)},
            "\n\n".join(notes),
        )

    def rerender(self, image: str | None, ground_truth: str | None, task: str) -> SegmentOutputs | tuple[Any, ...]:
        """A control changed: segment again if there is a photo, else leave everything as it is."""
        if not image:
            return (gr.skip(),) * 7
        return self.segment(image, ground_truth, task)

    @torch.inference_mode()
    def extras(self, image: str | None, ground_truth: str | None = None, task: str = DEFAULT_TASK) -> tuple[Any, ...]:
        """After /segment: each head's cut-out (RGBA PNG) and, with a mask, its error overlay, both
        heads' IoU-against-threshold curves and their calibration (the plots' column shown)."""
        if not image or self.context.models.segmenter is None:
            return (gr.skip(),) * 7
        loaded = read_photo(image, self.context.readable)
        target = read_mask(ground_truth, (loaded.rgb.shape[1], loaded.rgb.shape[0]), self.context.readable)
        probs = self.cached_probabilities(image, loaded.rgb, task)
        save, rgb, name = self.context.store.save, loaded.rgb, _namer(image, task)
        short = {"cross_entropy": "ce", "soft_iou": "soft_iou"}
        cutouts = [save(render.cutout(rgb, probs[loss] > MASK_THRESHOLD), name=name(f"{short[loss]}_cutout"))
                   for loss in HEAD_TITLES]  # fmt: skip
        if target is None:
            hidden = gr.Image(value=None, visible=False)
            return gr.Column(visible=False), None, None, hidden, hidden, *cutouts
        against = "U²-Net-p's mask" if is_reference(ground_truth) else "the ground truth"
        errors = [
            gr.Image(
                value=save(
                    render.errors(rgb, probs[loss] > MASK_THRESHOLD, target), name=name(f"{short[loss]}_errors")
                ),
                label=f"{HEAD_TITLES[loss].removesuffix(' head')} against {against}",
                visible=True,
            )
            for loss in HEAD_TITLES
        ]
        curves = {loss: iou_threshold_curve(probs[loss], target) for loss in HEAD_TITLES}
        calibration = {loss: calibration_curve(probs[loss], target) for loss in HEAD_TITLES}
        return (
            gr.Column(visible=True),
            save(curve_chart(curves), lossless=True, name=name("iou_by_threshold")),
            save(calibration_chart(calibration), lossless=True, name=name("calibration")),
            *errors,
            *cutouts,
        )
