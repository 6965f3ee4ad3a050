"""The Segment tab: the object in a photo from two heads on one DeepLabV3 body, side by side."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np
import torch

from colorseg.app import examples, render
from colorseg.app.render import HEAD_COLOURS, HEAD_TITLES
from colorseg.app.settings import INFERENCE
from colorseg.app.store import Context
from colorseg.app.uploads import photo_input, read_mask, read_photo
from colorseg.seg_losses import per_image_metrics

SHOW_BOTH, SHOW_CE, SHOW_IOU = "Both heads", "Cross-entropy head only", "Soft-IoU head only"
SCORE_HEADERS = ["Head", "Object pixels", "IoU", "Thresholded mIoU", "Pixel accuracy"]

# The tasks a segmenter may have heads for (colorseg.weights_io.SEG_TASKS), as the radio names them.
TASK_LABELS = {"objects": "Any object", "flowers": "Flowers (the assignment's Part D)", "horses": "Horses"}
DEFAULT_TASK = "objects"

HELP = """**1.** Upload, paste or take a photo, or click an example below. **2.** Choose what to find and,
optionally, add the photo's ground-truth mask (white = object) to score both heads. **3.** Press **Segment**.

One DeepLabV3 body is shared by every task; each task has two heads that differ only in their last
1×1 convolution, trained with cross-entropy (<span style="color:#ff7f0e">■ orange</span>) or with a
soft-IoU loss (<span style="color:#1f77b4">■ blue</span>)."""

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

    def __init__(self, context: Context):
        self.context = context

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
    def segment(
        self, image: str | None, ground_truth: str | None = None, task: str = DEFAULT_TASK
    ) -> SegmentOutputs:
        """Overlays and masks of ``task``'s two heads (paths), their disagreement, scores against a
        ground truth, notes."""
        models = self.context.models
        if models.segmenter is None:
            raise gr.Error(models.segment_problem or "Segmentation is unavailable.")
        loaded = read_photo(image, self.context.readable)
        target = read_mask(ground_truth, (loaded.rgb.shape[1], loaded.rgb.shape[0]), self.context.readable)
        started = time.perf_counter()
        probs = self.probabilities(loaded.rgb, task)
        seconds = time.perf_counter() - started

        masks = {loss: prob > 0.5 for loss, prob in probs.items()}
        agree = float((masks["cross_entropy"] == masks["soft_iou"]).mean())
        notes = [(
            f"Segmented {loaded.rgb.shape[1]}×{loaded.rgb.shape[0]} px in {seconds * 1000:.0f} ms looking for "
            f"**{TASK_LABELS.get(task, task)}** (one body pass, two heads). The heads agree on {agree:.1%} "
            "of the pixels."
        )]
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


def shown_heads(choice: str) -> tuple[gr.Column, gr.Column]:
    """Visibility of the cross-entropy and soft-IoU columns for the "Show" choice (no recomputation)."""
    return gr.Column(visible=choice != SHOW_IOU), gr.Column(visible=choice != SHOW_CE)


def _head_column(head: str, short: str) -> tuple[gr.Column, gr.Image, gr.Image]:
    # Fixed heights: small photos would otherwise be shown at their own few pixels.
    with gr.Column() as column:
        picture = gr.Image(label=HEAD_TITLES[head], height=280, elem_id=f"overlay-{short}")
        mask = gr.Image(label=f"{HEAD_TITLES[head].removesuffix(' head')} mask (PNG)", height=180,
                        buttons=["download"])
    return column, picture, mask


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
            image = photo_input(context.readable, label="Photo", sources=["upload", "clipboard", "webcam"],
                                height=300, elem_id="segment-photo")
            ground_truth = photo_input(context.readable, label="Ground-truth mask (optional)", sources=["upload"],
                                       height=160, elem_id="segment-mask")
            choices = task_choices(context.models.segmenter)
            task = gr.Radio(
                choices, value=DEFAULT_TASK if DEFAULT_TASK in dict(choices).values() else choices[0][1],
                label="What to find", interactive=context.models.segmenter is not None, elem_id="segment-task",
            )
            button = gr.Button("Segment", variant="primary", interactive=context.models.segmenter is not None)
            gr.Examples(rows, inputs=[image, ground_truth], label="Examples (click one)", examples_per_page=6)
        with gr.Column(scale=3):
            show = gr.Radio([SHOW_BOTH, SHOW_CE, SHOW_IOU], value=SHOW_BOTH, label="Show", container=False)
            with gr.Row():
                ce_column, overlay_ce, mask_ce = _head_column("cross_entropy", "ce")
                iou_column, overlay_iou, mask_iou = _head_column("soft_iou", "iou")
            disagreement = gr.Image(
                label="Where they differ: orange = only cross-entropy, blue = only soft-IoU, white = both",
                height=280, elem_id="disagreement",
            )
            scores = gr.Dataframe(headers=SCORE_HEADERS, label="Scores (IoU columns need a ground-truth mask)",
                                  interactive=False)
            notes = gr.Markdown()

    button.click(
        handlers.segment, inputs=[image, ground_truth, task],
        outputs=[overlay_ce, overlay_iou, mask_ce, mask_iou, disagreement, scores, notes],
        api_name="segment", **INFERENCE,
        api_description="Segment a photo with both heads of one task (objects, flowers or horses; default objects): "
        "overlays, masks, disagreement map, scores, notes.",
    )
    show.change(shown_heads, inputs=show, outputs=[ce_column, iou_column], api_visibility="private", queue=False)
