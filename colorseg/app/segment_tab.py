"""The Segment tab: the object in a photo from two heads on one DeepLabV3 body, side by side; with a
mask, each head's errors, its IoU against the threshold and its calibration."""

from __future__ import annotations

import gradio as gr

from colorseg.app import examples
from colorseg.app.render import HEAD_TITLES
from colorseg.app.segment_handlers import SCORE_HEADERS, SegmentHandlers, task_choices
from colorseg.app.settings import INFERENCE
from colorseg.app.store import Context
from colorseg.app.uploads import photo_input
from colorseg.segmentation.inference import DEFAULT_TASK

SCORE_COLUMN_WIDTHS = ["24%", "17%", "23%", "18%", "18%"]  # head, object pixels, IoU, mIoU, accuracy

SHOW_BOTH, SHOW_CE, SHOW_IOU = "Both heads", "Cross-entropy head only", "Soft-IoU head only"
HELP = """**1.** Upload, paste or take a photo, or click an example below. **2.** Choose what to find and,
optionally, add the photo's ground-truth mask (white = object) to score both heads. **3.** Press **Segment**.

One DeepLabV3 body is shared by every task; each task has two heads that differ only in their last
1×1 convolution, trained with cross-entropy (<span style="color:#e69f00">■ orange</span>) or with a
soft-IoU loss (<span style="color:#0072b2">■ blue</span>); the photo and its mirror image go through the body
together and each head averages the two views. With a mask each head's errors are shown
(<span style="color:#009e73">■ bluish green</span> = right, <span style="color:#cc79a7">■ purple</span> = extra,
<span style="color:#f0e442">■ yellow</span> = missed) with its IoU at every threshold and its calibration. The farm
examples come with **U²-Net-p's** mask (rembg's model, a stronger reference, not ground truth): against
it the scores read as *agreement with U²-Net-p*. Each head's cut-out (transparent PNG) is ready to download."""
THRESHOLD_CAPTION = """**Reading the threshold curve.** Each point is the head's IoU if its mask were cut at that
probability instead of 0.5 (dashed line). The dotted lines are the assignment's IoU levels 0.5, 0.55, …, 0.95:
its *thresholded mIoU* gives an image one tenth for every level its IoU (at 0.5) exceeds, so an IoU of 0.83
scores 0.7. A flat curve means the head is sure of its pixels; a peak away from 0.5 means another threshold
would have done better."""
CALIBRATION_CAPTION = """**Reading the calibration.** Left: the pixels grouped by the head's predicted probability,
and the fraction of each group that really is object; on the dashed diagonal a head is *calibrated* (of the
pixels it calls 70 % object, 70 % are). Right: how many pixels fall in each group. Cross-entropy is known to
give calibrated probabilities and a soft IoU loss to push them towards 0 and 1: compare the two heads here
(ECE, the expected calibration error, is the mean distance from the diagonal)."""


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
                headers=SCORE_HEADERS,
                label="Scores (the IoU columns need a mask)",
                interactive=False,
                wrap=True,
                column_widths=SCORE_COLUMN_WIDTHS,  # shares of the box: the whole table fits a phone
                elem_id="segment-scores",
                elem_classes=["fit-table"],
            )
            notes = gr.Markdown()
            with gr.Column(visible=False, elem_id="segment-plots") as plots:
                curve = gr.Image(label="IoU against the threshold", elem_id="iou-curve", buttons=["download"])
                gr.Markdown(THRESHOLD_CAPTION, elem_id="iou-curve-caption", elem_classes=["caption"])
                calibration = gr.Image(label="Calibration of each head", elem_id="calibration", buttons=["download"])
                gr.Markdown(CALIBRATION_CAPTION, elem_id="calibration-caption", elem_classes=["caption"])

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
        outputs=[plots, curve, calibration, errors_ce, errors_iou, cutout_ce, cutout_iou],
        api_visibility="private",
        **INFERENCE,
    )
    # Another task re-renders a photo already there (a slider-free control: on change, the last one wins).
    rerun = task.change(
        handlers.rerender,
        inputs=[image, ground_truth, task],
        outputs=[overlay_ce, overlay_iou, mask_ce, mask_iou, disagreement, scores, notes],
        api_visibility="private",
        trigger_mode="always_last",
        **INFERENCE,
    )
    rerun.success(
        handlers.extras,
        inputs=[image, ground_truth, task],
        outputs=[plots, curve, calibration, errors_ce, errors_iou, cutout_ce, cutout_iou],
        api_visibility="private",
        **INFERENCE,
    )
    show.change(shown_heads, inputs=show, outputs=[ce_column, iou_column], api_visibility="private", queue=False)
