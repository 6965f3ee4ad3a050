"""The Segment tab: the object in a photo from two heads on one DeepLabV3 body, side by side."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Any

import gradio as gr
import numpy as np
import torch

from colorseg.app import examples, render
from colorseg.app.render import HEAD_COLOURS, HEAD_TITLES
from colorseg.app.settings import INFERENCE
from colorseg.app.store import Context
from colorseg.app.uploads import photo_input, read_mask, read_photo
from colorseg.segmentation.explain import curve_chart, iou_threshold_curve
from colorseg.segmentation.inference import DEFAULT_TASK
from colorseg.segmentation.losses import MASK_THRESHOLD, per_image_metrics
from colorseg.segmentation.sources import SEG_TASKS

SHOW_BOTH, SHOW_CE, SHOW_IOU = "Both heads", "Cross-entropy head only", "Soft-IoU head only"
SCORE_HEADERS = ["Head", "Object pixels", "IoU", "Thresholded mIoU", "Pixel accuracy"]

# The tasks a segmenter may have heads for (colorseg.segmentation.sources.SEG_TASKS), as the radio names them.
TASK_LABELS = dict(zip(SEG_TASKS, ("Any object", "Flowers (the assignment's Part D)", "Horses")))

HELP = """**1.** Upload, paste or take a photo, or click an example below. **2.** Choose what to find and,
optionally, add the photo's ground-truth mask (white = object) to score both heads. **3.** Press **Segment**.

One DeepLabV3 body is shared by every task; each task has two heads that differ only in their last
1×1 convolution, trained with cross-entropy (<span style="color:#ff7f0e">■ orange</span>) or with a
soft-IoU loss (<span style="color:#1f77b4">■ blue</span>); the photo and its mirror image go through the body
together and each head averages the two views. With a ground-truth mask each head's errors are
shown (green = right, red = extra: false positive, blue = missed: false negative) with its IoU at every
threshold. Each head's cut-out (transparent PNG) is ready to download."""

SegmentOutputs = tuple[str, str, str, str, str, list[list[str]], str]


def mask_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU, the assignment's thresholded mIoU and pixel accuracy of one predicted mask."""
    scores = per_image_metrics(torch.from_numpy(pred)[None], torch.from_numpy(target)[None])
    return {name: float(values[0]) for name, values in scores.items()}


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
        key = (os.path.realpath(image), task)
        with self._lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        probs = self.probabilities(rgb, task)
        with self._lock:
            self._recent[key] = probs
            while len(self._recent) > self.RECENT:
                self._recent.popitem(last=False)
        return probs

    def probabilities(self, rgb: np.ndarray, task: str) -> dict[str, np.ndarray]:
        """{loss: float32 [H, W]} of ``task``'s two heads, from one body pass."""
        models = self.context.models
        if models.segmenter is None:
            raise gr.Error(models.segment_problem or "Segmentation is unavailable.")
        if task not in models.segmenter.tasks:
            offered = ", ".join(f"{task!r} ({label})" for label, task in task_choices(models.segmenter))
            raise gr.Error(f"These weights have no heads for {task!r}; choose one of {offered}.")
        try:
            probs = models.segmenter.probabilities(rgb, None, (task,))[task]
        except (RuntimeError, ValueError) as error:
            raise gr.Error(f"Segmentation failed on this image ({error}).") from None
        return {loss: np.asarray(probs[loss].float().cpu().numpy(), np.float32) for loss in HEAD_TITLES}

    @torch.inference_mode()
    def segment(self, image: str | None, ground_truth: str | None = None, task: str = DEFAULT_TASK) -> SegmentOutputs:
        """Overlays and masks of ``task``'s two heads (paths), their disagreement, scores against a
        ground truth, notes."""
        models = self.context.models
        if models.segmenter is None:
            raise gr.Error(models.segment_problem or "Segmentation is unavailable.")
        loaded = read_photo(image, self.context.readable)
        target = read_mask(ground_truth, (loaded.rgb.shape[1], loaded.rgb.shape[0]), self.context.readable)
        started = time.perf_counter()
        probs = self.cached_probabilities(image, loaded.rgb, task)
        seconds = time.perf_counter() - started

        masks = {loss: prob > MASK_THRESHOLD for loss, prob in probs.items()}
        agree = float((masks["cross_entropy"] == masks["soft_iou"]).mean())
        notes = [
            (
                f"Segmented {loaded.rgb.shape[1]}×{loaded.rgb.shape[0]} px in {seconds * 1000:.0f} ms looking for "
                f"**{TASK_LABELS.get(task, task)}** (one body pass, two heads). The heads agree on {agree:.1%} "
                "of the pixels."
            )
        ]
        if target is None:
            notes.append("Add the photo's ground-truth mask (white = object) to score each head.")
        notes += [f"Note: {note}." for note in loaded.notes]
        save, rgb = self.context.store.save, loaded.rgb
        return (
            save(render.overlay(rgb, masks["cross_entropy"], HEAD_COLOURS["cross_entropy"])),
            save(render.overlay(rgb, masks["soft_iou"], HEAD_COLOURS["soft_iou"])),
            save(render.mask_picture(masks["cross_entropy"]), lossless=True),
            save(render.mask_picture(masks["soft_iou"]), lossless=True),
            save(render.disagreement_map(rgb, masks["cross_entropy"], masks["soft_iou"])),
            score_rows(masks, target),
            "\n\n".join(notes),
        )

    @torch.inference_mode()
    def extras(self, image: str | None, ground_truth: str | None = None, task: str = DEFAULT_TASK) -> tuple[Any, ...]:
        """After /segment: each head's cut-out (RGBA PNG) and, with a ground truth, its TP/FP/FN
        overlay and the IoU-vs-threshold curves of both heads."""
        if not image or self.context.models.segmenter is None:
            return (gr.skip(),) * 5
        loaded = read_photo(image, self.context.readable)
        target = read_mask(ground_truth, (loaded.rgb.shape[1], loaded.rgb.shape[0]), self.context.readable)
        probs = self.cached_probabilities(image, loaded.rgb, task)
        save, rgb = self.context.store.save, loaded.rgb
        cutouts = [
            save(render.cutout(rgb, probs[loss] > MASK_THRESHOLD), name=f"cutout_{task}_{loss}") for loss in HEAD_TITLES
        ]
        if target is None:
            hidden = gr.Image(value=None, visible=False)
            return hidden, hidden, gr.Image(value=None, visible=False), *cutouts
        errors = [
            gr.Image(value=save(render.errors(rgb, probs[loss] > MASK_THRESHOLD, target)), visible=True)
            for loss in HEAD_TITLES
        ]
        # Soft-IoU first: matplotlib's first two colours are then the heads' own blue and orange.
        curves = {HEAD_TITLES[loss]: iou_threshold_curve(probs[loss], target) for loss in ("soft_iou", "cross_entropy")}
        return gr.Image(value=save(curve_chart(curves)), visible=True), *errors, *cutouts


def shown_heads(choice: str) -> tuple[gr.Column, gr.Column]:
    """Visibility of the cross-entropy and soft-IoU columns for the "Show" choice (no recomputation)."""
    return gr.Column(visible=choice != SHOW_IOU), gr.Column(visible=choice != SHOW_CE)


ERRORS_LABEL = "{} against the ground truth"


def _head_column(head: str, short: str) -> tuple[gr.Column, gr.Image, gr.Image, gr.Image, gr.Image]:
    # Fixed heights: small photos would otherwise be shown at their own few pixels.
    title = HEAD_TITLES[head].removesuffix(" head")
    with gr.Column() as column:
        picture = gr.Image(label=HEAD_TITLES[head], height=280, elem_id=f"overlay-{short}")
        mask = gr.Image(label=f"{title} mask (PNG)", height=180, buttons=["download"])
        errors = gr.Image(label=ERRORS_LABEL.format(title), height=280, visible=False, elem_id=f"errors-{short}")
        cutout = gr.Image(
            label=f"{title} cut-out (transparent PNG)",
            height=180,
            buttons=["download"],
            format="png",
            elem_id=f"cutout-{short}",
        )
    return column, picture, mask, errors, cutout


def create_tab(context: Context) -> None:
    """Lay out the Segment tab inside the current gr.Tab, then wire its events."""
    handlers = SegmentHandlers(context)
    rows = examples.segment_examples()
    context.readable.add_examples(path for row in rows for path in row)
    if context.models.segment_problem:
        gr.Markdown(f"⚠️ **Segmentation is unavailable.** {context.models.segment_problem}")
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=2):
            image = photo_input(
                context.readable,
                label="Photo",
                sources=["upload", "clipboard", "webcam"],
                height=300,
                elem_id="segment-photo",
            )
            ground_truth = photo_input(
                context.readable,
                label="Ground-truth mask (optional)",
                sources=["upload"],
                height=160,
                elem_id="segment-mask",
            )
            choices = task_choices(context.models.segmenter)
            task = gr.Radio(
                choices,
                value=DEFAULT_TASK if DEFAULT_TASK in dict(choices).values() else choices[0][1],
                label="What to find",
                interactive=context.models.segmenter is not None,
                elem_id="segment-task",
            )
            button = gr.Button("Segment", variant="primary", interactive=context.models.segmenter is not None)
            gr.Examples(rows, inputs=[image, ground_truth], label="Examples (click one)", examples_per_page=6)
        with gr.Column(scale=3):
            show = gr.Radio([SHOW_BOTH, SHOW_CE, SHOW_IOU], value=SHOW_BOTH, label="Show", container=False)
            with gr.Row():
                ce_column, overlay_ce, mask_ce, errors_ce, cutout_ce = _head_column("cross_entropy", "ce")
                iou_column, overlay_iou, mask_iou, errors_iou, cutout_iou = _head_column("soft_iou", "iou")
            disagreement = gr.Image(
                label="Where they differ: orange = only cross-entropy, blue = only soft-IoU, white = both",
                height=280,
                elem_id="disagreement",
            )
            scores = gr.Dataframe(
                headers=SCORE_HEADERS, label="Scores (IoU columns need a ground-truth mask)", interactive=False
            )
            notes = gr.Markdown()
            curve = gr.Image(
                label="IoU against the threshold (needs a ground-truth mask)",
                visible=False,
                height=340,
                elem_id="iou-curve",
            )

    segmented = button.click(
        handlers.segment,
        inputs=[image, ground_truth, task],
        outputs=[overlay_ce, overlay_iou, mask_ce, mask_iou, disagreement, scores, notes],
        api_name="segment",
        **INFERENCE,
        api_description="Segment a photo with both heads of one task (objects, flowers or horses; default objects): "
        "overlays, masks, disagreement map, scores, notes.",
    )
    segmented.success(
        handlers.extras,
        inputs=[image, ground_truth, task],
        outputs=[curve, errors_ce, errors_iou, cutout_ce, cutout_iou],
        api_visibility="private",
        **INFERENCE,
    )
    show.change(shown_heads, inputs=show, outputs=[ce_column, iou_column], api_visibility="private", queue=False)
