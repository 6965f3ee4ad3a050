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
from colorseg.app.settings import INFERENCE
from colorseg.app.store import Context, download_name
from colorseg.app.uploads import read_photo, user_error
from colorseg.colour import inference as colourizing
from colorseg.colour.explain import pixel_distribution, working_grey, working_pixel
from colorseg.colour.models import COLOUR_MODEL_NAMES

HELP = """**Inspect a pixel:** click anywhere on the result below. Each net's 24 palette colours are
shown as bars (the likeliest outlined); changing the networks or a setting updates them for the same pixel."""
CHARTS_CAPTION = """*How to read it:* one chart per net; each bar is one of the 24 palette colours (numbered
as in the palette strip above), as tall as the probability the net gives it at this pixel. One tall bar:
the net is sure. Many middling bars: it hesitates, and the annealed mean blends those colours, often
into a greyish brown."""
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
            raise user_error(self.context.models.colour_problem or "Colourization is unavailable.")
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
        chart = np.concatenate([margin, *charts], axis=0)
        return header + table, self.context.store.save(
            chart, lossless=True, name=download_name(image, f"colours_{x}_{y}")
        )

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
        marked = self.marked(image, result, (y, x))
        return summary, charts, (y, x), gr.skip() if marked is None else marked

    def marked(self, image: str | None, result: str | None, point: tuple[int, int]) -> str | None:
        """``result`` (the unmarked picture this app saved) with ``point`` ringed; None if it is gone."""
        if not result or not os.path.isfile(result):
            return None
        with Image.open(result) as picture:
            rgb = np.asarray(picture.convert("RGB"))
        y, x = point
        return self.context.store.save(render.mark(rgb, y, x), name=download_name(image, f"pixel_{x}_{y}"))

    def after_render(
        self,
        image: str | None,
        networks: list[str] | None,
        working_size: float,
        decoding: str,
        temperature: float,
        slider: tuple[str, str] | None,
        point: Point,
    ) -> tuple[Any, Any, str, Any]:
        """After the results were drawn: the best net's result becomes the picture to click (and,
        unmarked, the one rings are drawn on); a pixel already inspected is inspected again with the
        new networks and settings (ringed on the new result), else the old inspection clears."""
        best = slider[1] if slider else None
        if best is None or point is None or not image:
            return best, best, "", None
        summary, charts = self.inspect(image, networks, working_size, decoding, temperature, *point)
        return self.marked(image, best, point) or best, best, summary, charts


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
            summary = gr.HTML(elem_id="inspect-summary", elem_classes=["fit-table"])
            charts = gr.Image(
                label="Colour distribution per net (palette colour: probability)",
                interactive=False,
                elem_id="inspect-charts",
                show_label=True,
            )
            gr.Markdown(CHARTS_CAPTION, elem_classes=["caption"])
    return Panel(InspectorHandlers(context), picture, summary, charts, gr.State(None), gr.State(None))


def wire_panel(panel: Panel, inputs: list[Any], slider: gr.ImageSlider, renders: list[Any]) -> None:
    """``inputs`` = [photo, networks, working size, decoding, temperature]; ``renders`` are the events
    that draw the results (the Colourize button, every setting), after each of which the best net's
    result becomes the picture to click and an inspected pixel is inspected again."""
    handlers, outputs = panel.handlers, [panel.summary, panel.charts]
    for render_event in renders:
        render_event.success(
            handlers.after_render,
            inputs=[*inputs, slider, panel.point],
            outputs=[panel.picture, panel.result, *outputs],
            api_visibility="private",
            **INFERENCE,
        )
    # Another photo: the inspected pixel belonged to the old one.
    inputs[0].change(lambda: None, outputs=panel.point, api_visibility="private", queue=False)
    panel.picture.select(
        handlers.clicked,
        inputs=[*inputs, panel.result],
        outputs=[*outputs, panel.point, panel.picture],
        api_visibility="private",
        trigger_mode="always_last",
    )
