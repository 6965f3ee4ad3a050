"""The Colourize tab's per-pixel inspector: click a pixel of the result to see, for each chosen
net, its 24-colour distribution there, the argmax and annealed-mean colours and its confidence."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from colorseg.app import render
from colorseg.app.store import Context
from colorseg.app.uploads import read_photo
from colorseg.colour import inference as colourizing
from colorseg.colour.explain import pixel_distribution, working_grey, working_pixel
from colorseg.colour.models import COLOUR_MODEL_NAMES

HELP = """**Inspect a pixel:** click anywhere on the result below. Each net's 24 palette colours are
shown as bars (the likeliest outlined); changing the decoding or temperature updates the colours."""
SWATCH = (
    '<span style="display:inline-block;width:1.4em;height:1.1em;border:1px solid #888;background:{};'
    'vertical-align:middle"></span> {}'
)

Point = tuple[int, int] | None  # (y, x) of the last click, full resolution


class InspectorHandlers:
    def __init__(self, context: Context):
        self.context = context

    @torch.inference_mode()
    def inspect(
        self,
        image: str | None,
        networks: list[str] | None,
        working_size: float,
        decoding: str,
        temperature: float,
        y: int,
        x: int,
    ) -> tuple[str, str]:
        """An HTML table (net, argmax colour, annealed-mean colour, confidence) and a picture with a bar
        chart per net, one above the other, for full-resolution pixel (y, x) of ``image``."""
        colour = self.context.models.colour
        if colour is None or not colour.nets:
            raise gr.Error(self.context.models.colour_problem or "Colourization is unavailable.")
        loaded = read_photo(image, self.context.readable)
        names = [n for n in COLOUR_MODEL_NAMES if n in colour.nets and n in (networks or colour.nets)]
        size = int(np.clip(working_size, colourizing.MIN_WORKING_SIZE, colourizing.MAX_WORKING_SIZE))
        grey = working_grey(colourizing.greyscale(loaded.rgb), size)
        height, width = loaded.rgb.shape[:2]
        y, x = min(max(int(y), 0), height - 1), min(max(int(x), 0), width - 1)
        row, column = working_pixel(y, x, (height, width), tuple(grey.shape[-2:]))
        palette = (colour.palette.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
        rows, charts = [], []
        for name in names:
            dist = pixel_distribution(colour.nets[name], grey, colour.palette, row, column, float(temperature))
            title = f"{name}   colour {dist.argmax} at {dist.probs[dist.argmax]:.0%}   confidence {dist.confidence:.2f}"
            charts.append(render.distribution_bars(dist.probs, palette, dist.argmax, title))
            rows.append(self._row(name, dist, decoding))
        header = (
            f"<p>Pixel ({x}, {y}) of the {width}×{height} photo, i.e. ({column}, {row}) of the "
            f"{grey.shape[3]}×{grey.shape[2]} picture the nets see; grey level {float(grey[0, 0, row, column]):.2f}."
            " <b>Bold</b>: what the result shows with this decoding.</p>"
        )
        table = (
            "<table><tr><th>Net</th><th>Argmax colour</th><th>Annealed mean (T = "
            f"{float(temperature):.2f})</th><th>Confidence</th></tr>{''.join(rows)}</table>"
        )
        margin = np.full((30, charts[0].shape[1], 3), 255, np.uint8)  # room for the component's label
        return header + table, self.context.store.save(np.concatenate([margin, *charts], axis=0), lossless=True)

    @staticmethod
    def _row(name: str, dist: Any, decoding: str) -> str:
        argmax = SWATCH.format(render.hex_colour(dist.argmax_colour), f"#{dist.argmax} ({dist.probs[dist.argmax]:.0%})")
        mean = SWATCH.format(render.hex_colour(dist.annealed_mean_colour), render.hex_colour(dist.annealed_mean_colour))
        argmax, mean = (f"<b>{argmax}</b>", mean) if decoding == "argmax" else (argmax, f"<b>{mean}</b>")
        return f"<tr><td>{html.escape(name)}</td><td>{argmax}</td><td>{mean}</td><td>{dist.confidence:.2f}</td></tr>"

    def clicked(
        self,
        image: str | None,
        networks: list[str] | None,
        working_size: float,
        decoding: str,
        temperature: float,
        result: str | None,
        event: gr.SelectData,
    ) -> tuple[str, str, Point, Any]:
        """A click on the result picture (gradio gives (x, y) in its own pixels): the inspection, and
        the picture again with the pixel ringed (drawn on ``result``, the unmarked picture this app saved)."""
        x, y = (int(v) for v in event.index[:2])
        summary, charts = self.inspect(image, networks, working_size, decoding, temperature, y, x)
        marked = gr.skip()
        if result and os.path.isfile(result):
            with Image.open(result) as picture:
                marked = self.context.store.save(render.mark(np.asarray(picture.convert("RGB")), y, x))
        return summary, charts, (y, x), marked

    def again(
        self,
        image: str | None,
        networks: list[str] | None,
        working_size: float,
        decoding: str,
        temperature: float,
        point: Point,
    ) -> tuple[Any, Any]:
        """The same pixel after a decoding or temperature change; nothing before the first click."""
        if point is None or not image:
            return gr.skip(), gr.skip()
        return self.inspect(image, networks, working_size, decoding, temperature, *point)


def best_result(slider: tuple[str, str] | None) -> tuple[Any, Any, Point, str, None]:
    """After colourizing: the best net's result becomes the picture to click (and, unmarked, the one
    rings are drawn on); the old inspection clears."""
    best = slider[1] if slider else None
    return best, best, None, "", None


@dataclass
class Panel:
    handlers: InspectorHandlers
    picture: gr.Image
    summary: gr.HTML
    charts: gr.Image
    point: gr.State
    result: gr.State  # the best net's result as this app saved it, never a path a client sent


def create_panel(context: Context) -> Panel:
    """Lay out the inspector (under the Colourize tab's results); :func:`wire_panel` adds its events."""
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=2):
            picture = gr.Image(
                label="Click a pixel of the result",
                interactive=False,
                height=340,
                elem_id="inspect-picture",
                buttons=[],
            )
        with gr.Column(scale=3):
            summary = gr.HTML(elem_id="inspect-summary")
            charts = gr.Image(
                label="Colour distribution per net (palette colour: probability)",
                interactive=False,
                elem_id="inspect-charts",
                show_label=True,
            )
    return Panel(InspectorHandlers(context), picture, summary, charts, gr.State(None), gr.State(None))


def wire_panel(panel: Panel, inputs: list[Any], slider: gr.ImageSlider, colourized: Any) -> None:
    """``inputs`` = [photo, networks, working size, decoding, temperature]; ``colourized`` is the
    Colourize button's click event, after which the best net's result becomes the picture to click."""
    handlers, outputs = panel.handlers, [panel.summary, panel.charts]
    colourized.success(
        best_result,
        inputs=slider,
        outputs=[panel.picture, panel.result, panel.point, *outputs],
        api_visibility="private",
        queue=False,
    )
    panel.picture.select(
        handlers.clicked,
        inputs=[*inputs, panel.result],
        outputs=[*outputs, panel.point, panel.picture],
        api_visibility="private",
        trigger_mode="always_last",
    )
    for control in inputs[3:]:  # decoding, temperature
        control.change(
            handlers.again,
            inputs=[*inputs, panel.point],
            outputs=outputs,
            api_visibility="private",
            trigger_mode="always_last",
        )
