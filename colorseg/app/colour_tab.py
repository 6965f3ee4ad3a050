"""The Colourize tab: a photo through the chosen colour nets, before/after and side by side."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np
import torch

from colorseg.app import examples, inspector, render
from colorseg.app.models import regenerate
from colorseg.app.settings import INFERENCE
from colorseg.app.store import Context
from colorseg.app.uploads import files_only, photo_input, read_photo
from colorseg.colour import inference as colourizing
from colorseg.colour.models import COLOUR_MODEL_NAMES

# Best net first: the before/after slider shows the best one that was chosen.
NET_PREFERENCE = ("UNet", "ConvTransposeNet", "PoolUpsampleNet")

HELP = """**1.** Upload, paste or take a photo, or click an example below (a colour photo is turned grey
first, so you can compare with its real colours). **2.** Choose networks. **3.** Press **Colourize**.

The networks were trained on 32×32 photos of horses from CIFAR-10: expect brown horses, green
grass and blue-grey skies, and muted guesses elsewhere."""

Gallery = list[tuple[str, str]]


class ColourHandlers:
    """The Colourize tab's functions (and the /colorize endpoint); models come loaded."""

    def __init__(self, context: Context):
        self.context = context

    def colour_models(self) -> colourizing.ColourModels:
        """The loaded palette and nets; gr.Error saying why when none loaded."""
        colour = self.context.models.colour
        if colour is None or not colour.nets:
            raise gr.Error(self.context.models.colour_problem or "Colourization is unavailable.")
        return colour

    def checked_nets(self, networks: list[str] | None) -> list[str]:
        """The chosen nets in the assignment's order; gr.Error if none, or one that is not loaded."""
        colour = self.colour_models()
        networks = [n for n in COLOUR_MODEL_NAMES if n in (networks if networks is not None else colour.nets)]
        if not networks:
            raise gr.Error("Tick at least one network to colourize with.")
        missing = [n for n in networks if n not in colour.nets]
        if missing:
            raise gr.Error(f"{', '.join(missing)} is not loaded: {colour.problems.get(missing[0], '')}")
        return networks

    @torch.inference_mode()
    def colorize(
        self,
        image: str | None,
        networks: list[str] | None = None,
        working_size: float = colourizing.DEFAULT_WORKING_SIZE,
        decoding: str = colourizing.DEFAULT_DECODING,
        temperature: float = colourizing.DEFAULT_TEMPERATURE,
    ) -> tuple[Gallery, tuple[str, str], Gallery, str]:
        """Greyscale + each net's colourization (+ the original), before/after pair, confidence maps, notes;
        pictures as (path, caption) / path."""
        self.colour_models()
        loaded = read_photo(image, self.context.readable)
        networks = self.checked_nets(networks)
        if decoding not in colourizing.DECODINGS:
            raise gr.Error(f"Decoding must be one of: {', '.join(colourizing.DECODINGS)}.")
        size = int(np.clip(working_size, colourizing.MIN_WORKING_SIZE, colourizing.MAX_WORKING_SIZE))
        started = time.perf_counter()
        grey = colourizing.greyscale(loaded.rgb)
        results = colourizing.colourize(self.context.models.colour, grey, networks, size, decoding, float(temperature))
        seconds = time.perf_counter() - started

        save = self.context.store.save
        grey_path = save(render.grey_picture(grey))
        gallery = [(grey_path, "Greyscale input")] + [(save(result.rgb), name) for name, result in results.items()]
        if loaded.is_colour:
            gallery.append((save(loaded.rgb), "Original colours"))
        best = next(n for n in NET_PREFERENCE if n in results)
        confidence = [(save(render.colour_map(r.confidence)), f"{name}: confidence") for name, r in results.items()]
        work_w, work_h = results[best].working_size
        notes = [
            (
                f"Colourized {loaded.rgb.shape[1]}×{loaded.rgb.shape[0]} px with {', '.join(results)} in "
                f"{seconds * 1000:.0f} ms (colour predicted at {work_w}×{work_h}, {decoding} decoding). The slider "
                f"compares the greyscale input with **{best}**."
            )
        ]
        if not loaded.is_colour:
            notes.append("The upload had no colour, so there is no original to compare with.")
        notes += [f"Note: {note}." for note in loaded.notes]
        return gallery, (grey_path, gallery[1 + list(results).index(best)][0]), confidence, "\n\n".join(notes)


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


def create_tab(context: Context) -> None:
    """Lay out the Colourize tab inside the current gr.Tab, then wire its events."""
    handlers = ColourHandlers(context)
    nets = list(context.models.colour.nets) if context.models.colour else []
    photos = examples.colour_examples()
    context.readable.add_examples(photos)
    _warnings(context)
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=2):
            image = photo_input(
                context.readable,
                label="Photo",
                sources=["upload", "clipboard", "webcam"],
                height=300,
                elem_id="colour-photo",
            )
            networks = gr.CheckboxGroup(nets, value=nets, label="Networks")
            button = gr.Button("Colourize", variant="primary", interactive=bool(nets))
            with gr.Accordion("Settings", open=False):
                working_size, decoding, temperature = settings_inputs()
            gr.Examples(photos, inputs=[image], label="Examples (click one)", examples_per_page=12)
        with gr.Column(scale=3):
            # An input too (the inspector's picture comes from it): paths only, never a decoded data: URL.
            slider = files_only(
                gr.ImageSlider(label="Before / after: drag the handle", max_height=460, type="filepath"),
                context.readable,
            )
            notes = gr.Markdown(elem_id="colour-notes")
    # Full width, one row: greyscale, up to three nets and the original side by side.
    gallery = gr.Gallery(
        label="Side by side (click one to enlarge)",
        columns=5,
        fit_columns=False,
        object_fit="contain",
        height=320,
        elem_id="colour-results",
    )
    with gr.Accordion("Confidence maps (yellow = sure of the colour, purple = unsure)", open=False):
        confidence = gr.Gallery(
            label="Confidence, at the working size", columns=5, fit_columns=False, object_fit="contain", height=300
        )

    with gr.Accordion("Inspect a pixel", open=True):
        panel = inspector.create_panel(context)
    inputs = [image, networks, working_size, decoding, temperature]
    colourized = button.click(
        handlers.colorize,
        inputs=inputs,
        outputs=[gallery, slider, confidence, notes],
        api_name="colorize",
        **INFERENCE,
        api_description="Colourize a photo: greyscale input, each net's result (and the original), "
        "a before/after pair, confidence maps, notes.",
    )
    inspector.wire_panel(panel, inputs, slider, colourized)
