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

HELP = """**1.** Upload, paste or take a photo, or click an example below. **2.** Optionally add its
ground-truth mask (white = object) to score both heads. **3.** Press **Segment**.

Both heads share one DeepLabV3 body and differ only in their last 1×1 convolution, trained with
cross-entropy (<span style="color:#ff7f0e">■ orange</span>) or with a soft-IoU loss
(<span style="color:#1f77b4">■ blue</span>). They were trained on horse photos."""

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


class SegmentHandlers:
    """The Segment tab's functions (and the /segment endpoint); models come loaded."""

    def __init__(self, context: Context):
        self.context = context

    @torch.inference_mode()
    def segment(self, image: str | None, ground_truth: str | None = None) -> SegmentOutputs:
        """Overlays and masks of both heads (paths), their disagreement, scores against a ground truth, notes."""
        models = self.context.models
        if models.segmenter is None:
            raise gr.Error(models.segment_problem or "Segmentation is unavailable.")
        loaded = read_photo(image, self.context.readable)
        target = read_mask(ground_truth, (loaded.rgb.shape[1], loaded.rgb.shape[0]), self.context.readable)
        started = time.perf_counter()
        try:
            result = models.segmenter.predict(loaded.rgb)
        except (RuntimeError, ValueError) as error:
            raise gr.Error(f"Segmentation failed on this image ({error}).") from None
        seconds = time.perf_counter() - started

        masks = {"cross_entropy": np.asarray(result.mask_cross_entropy, bool),
                 "soft_iou": np.asarray(result.mask_soft_iou, bool)}
        agree = float((masks["cross_entropy"] == masks["soft_iou"]).mean())
        notes = [(
            f"Segmented {loaded.rgb.shape[1]}×{loaded.rgb.shape[0]} px in {seconds * 1000:.0f} ms "
            f"(one body pass, two heads). The heads agree on {agree:.1%} of the pixels."
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
        handlers.segment, inputs=[image, ground_truth],
        outputs=[overlay_ce, overlay_iou, mask_ce, mask_iou, disagreement, scores, notes],
        api_name="segment", **INFERENCE,
        api_description="Segment a photo with both heads: overlays, masks, disagreement map, scores, notes.",
    )
    show.change(shown_heads, inputs=show, outputs=[ce_column, iou_column], api_visibility="private", queue=False)
