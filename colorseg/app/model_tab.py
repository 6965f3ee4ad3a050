"""The Model tab: Question A.3's per-layer counts for any input size, and the weights in use."""

from __future__ import annotations

from typing import Any

import gradio as gr
import torch

from colorseg.app.report import weights_report
from colorseg.app.store import Context
from colorseg.colour.layer_stats import LayerTable, layer_table
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.registry import create_model

HELP = """### Question A.3: outputs, weights and connections of every layer
Measured with forward hooks on the real module for any input size. Connections: for each output
value, the inputs it reads (+1 for a bias); a transposed convolution counts only the inputs that
really contribute. ReLU is not counted as a layer."""
LAYER_HEADERS = ["Layer", "Type", "Output (C×H×W)", "Outputs", "Weights", "Connections"]
CURVES_CAPTION = """*How to read them:* each plot runs over the training epochs; a loss should fall and an
accuracy or IoU rise. Compare nets or settings at the last epoch on the validation curves, measured on
photos the nets never trained on; a validation curve that turns back up while the training loss keeps
falling is overfitting."""


def closed_form_check(table: LayerTable, size: int, model: torch.nn.Module) -> str:
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


def constructor_of(context: Context, network: str) -> tuple[dict[str, Any], str]:
    """The loaded net's constructor settings (or the defaults) and a phrase saying which."""
    colour = context.models.colour
    if colour is not None and network in colour.nets:
        return colour.descriptions[network].get("constructor", {}), "as the loaded weights"
    return {}, "default settings: no weights loaded for it"


class ModelHandlers:
    def __init__(self, context: Context):
        self.context = context

    def architecture(self, network: str, height: float, width: float) -> tuple[list[list[Any]], str]:
        """Question A.3's table for ``network`` at height × width, from the real module."""
        if network not in COLOUR_MODEL_NAMES:
            raise gr.Error(f"Choose one of {', '.join(COLOUR_MODEL_NAMES)}.")
        height, width = int(height or 0), int(width or 0)
        if height < 4 or width < 4 or height % 4 or width % 4 or max(height, width) > 1024:
            raise gr.Error("Height and width must be multiples of 4 between 4 and 1024 (the nets halve them twice).")
        constructor, origin = constructor_of(self.context, network)
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
        notes = [
            (
                f"**{network}** ({settings}, {origin}) on one {height}×{width} greyscale image: "
                f"**{table.outputs:,}** outputs, **{table.weights:,}** weights, **{table.connections:,}** connections."
            )
        ]
        if network == "PoolUpsampleNet" and height == width and height in (32, 64):
            notes.append(closed_form_check(table, height, model))
        return rows, "\n\n".join(notes)


def _report(context: Context) -> None:
    markdown, curves, report = weights_report(context.models)
    gr.Markdown("### Training report of the weights in use")
    gr.Markdown(markdown, elem_id="model-weights", elem_classes=["fit-markdown"])
    # Each plot whole, one under another at the page's width: in a gallery's square tiles these wide
    # plots were cropped or shrunk past reading.
    for index, (path, caption) in enumerate(curves):
        gr.Image(
            path,
            label=caption,
            interactive=False,
            buttons=["download", "fullscreen"],
            elem_id=f"model-curve-{index}",
            elem_classes=["model-curve"],
        )
    if curves:
        gr.Markdown(CURVES_CAPTION, elem_classes=["caption"])
    if report is not None:
        with gr.Accordion("Full training report (JSON)", open=False):
            gr.JSON(report)


def create_tab(context: Context, demo: gr.Blocks) -> None:
    """Lay out the Model tab inside the current gr.Tab, then wire its events (the table fills on load)."""
    handlers = ModelHandlers(context)
    gr.Markdown(HELP)
    with gr.Row():
        network = gr.Dropdown(list(COLOUR_MODEL_NAMES), value="PoolUpsampleNet", label="Network")
        height = gr.Number(32, label="Input height (multiple of 4)", precision=0, step=4, minimum=4, maximum=1024)
        width = gr.Number(32, label="Input width (multiple of 4)", precision=0, step=4, minimum=4, maximum=1024)
        button = gr.Button("Count", variant="primary")
    layers = gr.Dataframe(
        headers=LAYER_HEADERS,
        label="Per layer",
        interactive=False,
        wrap=True,
        max_height=720,
        elem_id="model-layers",
        elem_classes=["fit-table"],
    )
    notes = gr.Markdown()
    _report(context)

    count = {"fn": handlers.architecture, "inputs": [network, height, width], "outputs": [layers, notes]}
    button.click(**count, api_name="layer_table")
    network.change(**count, api_visibility="private")
    demo.load(**count, api_visibility="private")
