"""The "Inside the nets" tab: every layer's output for the user's photo with its A.3 counts
(UNet's skips marked), and the checkerboard probe of all three nets."""

from __future__ import annotations

import os
import time
from typing import Any

import gradio as gr
import numpy as np
import torch

from colorseg.app import examples
from colorseg.app.settings import INFERENCE
from colorseg.app.store import Context
from colorseg.app.uploads import photo_input, read_photo, user_error
from colorseg.colour import inference as colourizing
from colorseg.colour.checkerboard import checkerboard_probe, checkerboard_share
from colorseg.colour.explain import Activation, capture_activations, channel_grid, working_grey
from colorseg.colour.models import COLOUR_MODEL_NAMES

HELP = """Pick a net and a photo, then **Look inside**: each layer's output channels at the working
resolution (each map scaled to its own range, viridis: dark = low, yellow = high; at most 32 channels
per layer), with Question A.3's counts for that layer. UNet's concatenations are marked
**← skip from …**: that layer also reads an earlier layer's output (or the input itself)."""
PROBE_HELP = """### Checkerboard probe
A stride-2 transposed convolution whose kernel size is not a multiple of its stride overlaps unevenly:
every other output pixel gets more kernel taps, which leaves a period-2 grid (Odena, Dumoulin & Olah,
["Deconvolution and Checkerboard Artifacts"](https://distill.pub/2016/deconv-checkerboard/), Distill
2016). Upsampling then convolving, as PoolUpsampleNet does, spreads every input evenly. Fed a flat
grey and a smooth ramp (nothing at the pixel scale), any fine pattern below is the net's own."""
PROBE_CAPTION = """*How to read it:* each net has two rows, the flat grey on top and the ramp below; left, the
largest colour score per pixel, right, what is left after blurring it away. A regular grid of dots on
the right is a checkerboard (ConvTransposeNet and UNet both upsample with transposed convolutions);
a clean picture with only a bright frame (the zero padding at the borders) is what upsampling gives."""
# Each net's gallery id: the browser test finds the pictures by these.
PROBE_IDS = {"PoolUpsampleNet": "probe-upsampled", "ConvTransposeNet": "probe-transposed", "UNet": "probe-unet"}
PROBE_CAPTIONS = {
    "flat_max_logit": "flat grey: largest logit",
    "flat_residual": "flat grey: high-pass residual",
    "ramp_max_logit": "ramp: largest logit",
    "ramp_residual": "ramp: high-pass residual",
}
LAYER_HEADERS = ["Layer", "Type", "Output (C×H×W)", "Outputs", "Weights", "Connections", "Reads"]

Gallery = list[tuple[str, str]]


def skip_note(activation: Activation, previous: str) -> str:
    """'← skip from down1.1' for a layer that also reads something besides the layer just before it."""
    skipped = [name for name in activation.inputs_from if name != previous]
    return f"← skip from {', '.join(skipped)}" if activation.consumes_skip and skipped else ""


def layer_caption(activation: Activation, skip: str) -> str:
    shape = "×".join(map(str, activation.tensor.shape))
    counts = f"{activation.outputs:,} outputs · {activation.weights:,} weights · {activation.connections:,} connections"
    # The skip first: a gallery cuts long captions short.
    return f"{activation.name} {skip + ' · ' if skip else '· '}{activation.kind} · {shape} · {counts}"


class InsideHandlers:
    def __init__(self, context: Context):
        self.context = context

    def net(self, network: str) -> torch.nn.Module:
        colour = self.context.models.colour
        if colour is None or not colour.nets:
            raise user_error(self.context.models.colour_problem or "Colourization is unavailable.")
        if network not in colour.nets:
            raise user_error(f"Choose one of the loaded nets: {', '.join(colour.nets)}.")
        return colour.nets[network]

    @torch.inference_mode()
    def explore(
        self, image: str | None, network: str = "UNet", working_size: float = colourizing.DEFAULT_WORKING_SIZE
    ) -> tuple[Gallery, list[list[Any]], str]:
        """Each layer's channel maps (gallery of (path, caption)), the layer table with what each reads, notes."""
        model = self.net(network)
        loaded = read_photo(image, self.context.readable)
        size = int(np.clip(working_size, colourizing.MIN_WORKING_SIZE, colourizing.MAX_WORKING_SIZE))
        started = time.perf_counter()
        grey = working_grey(colourizing.greyscale(loaded.rgb), size)
        activations = capture_activations(model, grey)
        gallery, rows, previous = [], [], "input"
        for activation in activations:
            skip = skip_note(activation, previous)
            path = self.context.store.save(channel_grid(activation.tensor), lossless=True)
            gallery.append((path, layer_caption(activation, skip)))
            rows.append(
                [
                    activation.name,
                    activation.kind,
                    "×".join(map(str, activation.tensor.shape)),
                    activation.outputs,
                    activation.weights,
                    activation.connections,
                    ", ".join(activation.inputs_from) + (" (skip)" if skip else ""),
                ]
            )
            previous = activation.name
        seconds = time.perf_counter() - started
        notes = (
            f"**{network}** on your photo at {grey.shape[3]}×{grey.shape[2]} px (the working size): "
            f"{len(activations)} layers in {seconds * 1000:.0f} ms. Click a picture to enlarge it."
        )
        return gallery, rows, notes

    def explore_if_photo(self, image: str | None, network: str, working_size: float) -> tuple[Any, Any, Any]:
        """Another net chosen: look inside it too, if a photo is there (no error popup before one is)."""
        if not image:
            return gr.skip(), gr.skip(), gr.skip()
        return self.explore(image, network, working_size)

    def probe(self) -> tuple[Any, ...]:
        """The probe (it runs on every page load): computed once, again only after the store swept its pictures."""
        cached = getattr(self, "_probe", None)
        if cached is None or not all(os.path.exists(path) for gallery in cached[:-1] for path, _ in gallery):
            self._probe = cached = self.run_probe()
        return cached

    @torch.inference_mode()
    def run_probe(self) -> tuple[Any, ...]:
        """Each net's probe pictures (one gallery per net, in PROBE_IDS' order) and each one's period-2 share."""
        colour = self.context.models.colour
        galleries, shares = [], []
        for name in PROBE_IDS:
            net = colour.nets.get(name) if colour else None
            if net is None:
                galleries.append([])
                shares.append(f"{name} is not loaded.")
                continue
            pictures = checkerboard_probe(net)
            galleries.append(
                [
                    (self.context.store.save(pictures[key], lossless=True, name=f"probe_{name}_{key}"), caption)
                    for key, caption in PROBE_CAPTIONS.items()
                ]
            )
            shares.append(
                f"**{name}**: {checkerboard_share(net):.1%} of its output's variation on the flat grey "
                "alternates pixel by pixel (the checkerboard's period)."
            )
        return (*galleries, "\n\n".join(shares))


def create_tab(context: Context, demo: gr.Blocks) -> None:
    """Lay out the tab inside the current gr.Tab, then wire its events (the probe runs on page load)."""
    handlers = InsideHandlers(context)
    nets = [n for n in COLOUR_MODEL_NAMES if context.models.colour and n in context.models.colour.nets]
    photos = examples.colour_examples()
    context.readable.add_examples(photos)
    if not nets:
        gr.Markdown(f"⚠️ **Colourization is unavailable.** {context.models.colour_problem or ''}")
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=1):
            image = photo_input(
                context.readable, label="Photo", sources=["upload", "clipboard"], height=220, elem_id="inside-photo"
            )
            network = gr.Radio(nets, value=nets[-1] if nets else None, label="Network", elem_id="inside-net")
            working_size = gr.Slider(32, 128, value=colourizing.DEFAULT_WORKING_SIZE, step=4, label="Working size (px)")
            button = gr.Button("Look inside", variant="primary", interactive=bool(nets))
            gr.Examples(photos, inputs=[image], label="Examples (click one)", examples_per_page=8)
        with gr.Column(scale=3):
            notes = gr.Markdown()
            layers = gr.Gallery(
                label="Layer by layer (input → output)",
                columns=3,
                object_fit="contain",
                height=620,
                elem_id="inside-layers",
                elem_classes=["fit-gallery"],
            )
    table = gr.Dataframe(
        headers=LAYER_HEADERS,
        label="Question A.3 counts per layer",
        interactive=False,
        wrap=True,
        elem_id="inside-table",
        elem_classes=["fit-table"],
    )
    gr.Markdown(PROBE_HELP)
    probe_notes = gr.Markdown()
    # One gallery per net, two pictures a row (flat grey, then ramp); "auto" height shows both rows
    # whole, and the row wraps the galleries one under another on a narrow screen.
    with gr.Row():
        probes = [
            gr.Gallery(
                label=name,
                columns=2,
                height="auto",
                object_fit="contain",
                min_width=240,
                elem_id=elem_id,
                elem_classes=["fit-gallery"],
            )
            for name, elem_id in PROBE_IDS.items()
        ]
    gr.Markdown(PROBE_CAPTION, elem_classes=["caption"])

    explore = {"fn": handlers.explore, "inputs": [image, network, working_size], "outputs": [layers, table, notes]}
    button.click(**explore, api_name="layers", **INFERENCE)
    network.change(
        **{**explore, "fn": handlers.explore_if_photo},
        api_visibility="private",
        trigger_mode="always_last",
        **INFERENCE,
    )
    demo.load(handlers.probe, outputs=[*probes, probe_notes], api_visibility="private")
