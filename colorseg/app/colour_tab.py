"""The Colourize tab: a photo through the chosen colour nets, before/after and side by side, each
net scored against the photo's own colours; results follow every setting."""

from __future__ import annotations

import gradio as gr

from colorseg.app import examples, inspector
from colorseg.app.colour_handlers import SCORE_HEADERS, ColourHandlers
from colorseg.app.models import regenerate
from colorseg.app.settings import INFERENCE
from colorseg.app.store import Context
from colorseg.app.uploads import files_only, photo_input
from colorseg.colour import inference as colourizing

HELP = """**1.** Upload, paste or take a photo, or click an example below (a colour photo is turned grey
first, so you can compare with its real colours). **2.** Choose networks. **3.** Press **Colourize**;
after that, the results follow every change of networks or settings.

The networks were trained on 32×32 photos of horses from CIFAR-10: expect brown horses, green
grass and blue-grey skies, and muted guesses elsewhere."""
CIFAR_NOTE = """**CIFAR-sized examples:** the farm photos above shrunk to 32×32 px, the size of the CIFAR-10
photos the nets learnt from. A photo is never enlarged, so at this size the nets see it exactly as they
saw their training photos: the nets in their own element."""
CONFIDENCE_CAPTION = """*How to read it:* each pixel of the picture the net saw, yellow where the net puts
nearly all its probability on one of the 24 colours, purple where it spreads it over many. Edges and
unfamiliar objects are usually purple: there the net is guessing."""
SCORES_CAPTION = """*How to read it:* the loss is the mean cross-entropy per pixel, how little probability
the net gave to the true palette colour (lower is better; guessing evenly among 24 colours scores
ln 24 ≈ 3.18); the accuracy is the share of pixels whose likeliest colour is exactly the true one."""
TARGET_CAPTION = """*How to read it:* the top strip is the palette, the only 24 colours the nets can
answer with, numbered as in the pixel inspector. Below it, your photo at the working size with every
pixel replaced by its nearest palette colour: the answer each net is scored against."""


def _warnings(context: Context) -> None:
    models = context.models
    if models.colour_problem:
        gr.Markdown(f"⚠️ **Colourization is unavailable.** {models.colour_problem}")
    elif models.colour and models.colour.problems:
        gr.Markdown(
            regenerate(
                "⚠️ **Some networks are unavailable:**\n\n"
                + "\n".join(f"- {name}: {why}" for name, why in models.colour.problems.items())
            )
        )


def settings_inputs() -> tuple[gr.Slider, gr.Radio, gr.Slider]:
    """Working size, decoding and temperature, in the order /colorize takes them."""
    working_size = gr.Slider(
        colourizing.MIN_WORKING_SIZE,
        colourizing.MAX_WORKING_SIZE,
        value=colourizing.DEFAULT_WORKING_SIZE,
        step=4,
        label="Working size (px)",
        info="Longest side the networks see; the colour is then carried onto your full-size photo.",
    )
    decoding = gr.Radio(
        list(colourizing.DECODINGS),
        value=colourizing.DEFAULT_DECODING,
        label="Decoding",
        info="annealed mean: smooth colours; argmax: the single likeliest of the 24 colours.",
    )
    temperature = gr.Slider(
        0.05,
        1.0,
        value=colourizing.DEFAULT_TEMPERATURE,
        step=0.01,
        label="Temperature",
        info="Annealed mean only: lower gives bolder colours, 1 the plain mean.",
    )
    return working_size, decoding, temperature


def _photo_column(context: Context) -> tuple[gr.Image, gr.CheckboxGroup, gr.Button, list[gr.components.Component]]:
    """The photo, the networks, the button, the settings and the examples."""
    nets = list(context.models.colour.nets) if context.models.colour else []
    photos, small = examples.colour_examples(), examples.cifar_sized()
    context.readable.add_examples([*photos, *small])
    image = photo_input(
        context.readable, label="Photo", sources=["upload", "clipboard", "webcam"], height=300, elem_id="colour-photo"
    )
    networks = gr.CheckboxGroup(nets, value=nets, label="Networks", elem_id="colour-nets")
    button = gr.Button("Colourize", variant="primary", interactive=bool(nets))
    with gr.Accordion("Settings", open=False, elem_id="colour-settings"):
        working_size, decoding, temperature = settings_inputs()
    gr.Examples(photos, inputs=[image], label="Examples (click one)", examples_per_page=12)
    if small:
        gr.Markdown(CIFAR_NOTE, elem_classes=["caption"])
        gr.Examples(small, inputs=[image], label="CIFAR-sized examples, 32×32 px", examples_per_page=12)
    return image, networks, button, [working_size, decoding, temperature]


def _side_by_side(label: str, elem_id: str, height: int) -> gr.Gallery:
    """Up to five pictures in one row; two a row on a phone (demo.LAYOUT_CSS's fit-gallery)."""
    return gr.Gallery(
        label=label,
        columns=5,
        fit_columns=False,
        object_fit="contain",
        height=height,
        elem_id=elem_id,
        elem_classes=["fit-gallery"],
    )


def create_tab(context: Context) -> None:
    """Lay out the Colourize tab inside the current gr.Tab, then wire its events."""
    handlers = ColourHandlers(context)
    _warnings(context)
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=2):
            image, networks, button, settings = _photo_column(context)
        with gr.Column(scale=3):
            # Output only (nothing to drop here), yet an input too: the inspector's picture comes
            # from it, so it takes paths only, never a decoded data: URL.
            slider = files_only(
                gr.ImageSlider(
                    label="Before / after: drag the handle",
                    max_height=460,
                    type="filepath",
                    interactive=False,
                    elem_id="colour-slider",
                ),
                context.readable,
            )
            notes = gr.Markdown(elem_id="colour-notes")
    # Full width: greyscale, up to three nets and the original side by side.
    gallery = _side_by_side("Side by side (click one to enlarge)", "colour-results", height=320)
    with gr.Accordion("How close is each net to your photo's real colours?", open=True):
        score_notes = gr.Markdown(elem_id="colour-score-notes")
        scores = gr.Dataframe(
            headers=SCORE_HEADERS,
            datatype=["str", "number", "number"],
            label="Scores against your photo's own colours",
            interactive=False,
            wrap=True,
            column_widths=["40%", "30%", "30%"],  # shares of the box: the whole table fits a phone
            elem_id="colour-scores",
            elem_classes=["fit-table"],
        )
        gr.Markdown(SCORES_CAPTION, elem_classes=["caption"])
        palette = gr.Image(label="The 24 palette colours", interactive=False, elem_id="colour-palette")
        target = gr.Image(
            label="Target: your photo in palette colours, at the working size",
            interactive=False,
            elem_id="colour-target",
        )
        gr.Markdown(TARGET_CAPTION, elem_classes=["caption"])
    with gr.Accordion("Confidence maps (yellow = sure of the colour, purple = unsure)", open=False):
        confidence = _side_by_side("Confidence, at the working size", "colour-confidence", height=300)
        gr.Markdown(CONFIDENCE_CAPTION, elem_classes=["caption"])

    with gr.Accordion("Inspect a pixel", open=True):
        panel = inspector.create_panel(context)
    inputs = [image, networks, *settings]
    outputs = [gallery, slider, confidence, notes, scores, score_notes, palette, target]
    renders = [
        button.click(
            handlers.colorize,
            inputs=inputs,
            outputs=outputs,
            api_name="colorize",
            **INFERENCE,
            api_description="Colourize a photo: greyscale input, each net's result (and the original), "
            "a before/after pair, confidence maps, notes; then each net's loss and pixel accuracy against "
            "the photo's own palette colours, a note on them, the palette and the photo in palette colours.",
        )
    ]
    # Every setting re-renders (a slider once it is let go), only the latest change counts.
    working_size, decoding, temperature = settings
    for control, trigger in (
        (networks, "change"),
        (decoding, "change"),
        (working_size, "release"),
        (temperature, "release"),
    ):
        renders.append(
            getattr(control, trigger)(
                handlers.rerender,
                inputs=inputs,
                outputs=outputs,
                api_visibility="private",
                trigger_mode="always_last",
                **INFERENCE,
            )
        )
    inspector.wire_panel(panel, inputs, slider, renders)
