"""The Colourize tab's functions (and the /colorize endpoint): a photo through the chosen nets,
each net scored against the photo's own palette colours."""

from __future__ import annotations

import os
import time
from typing import Any

import gradio as gr
import numpy as np
import torch

from colorseg.app import render
from colorseg.app.store import Context, download_name
from colorseg.app.uploads import read_photo, user_error
from colorseg.colour import inference as colourizing
from colorseg.colour.models import COLOUR_MODEL_NAMES, COLOUR_NET_PREFERENCE
from colorseg.colour.scoring import palette_rgb, palette_target
from colorseg.image_io import LoadedImage

Gallery = list[tuple[str, str]]
SCORE_HEADERS = ["Network", "Loss (cross-entropy)", "Pixel accuracy (%)"]
NO_NETS = "No network is ticked: tick at least one under **Networks** to colourize the photo."
NO_COLOURS = (
    "This photo has no colours (it is greyscale), so there is nothing to score the nets against: "
    "the loss and the accuracy compare a net's colours with the photo's real ones. Try a colour photo, "
    "such as one of the examples."
)
TARGET_LONGEST = 512  # the target picture's longest side, enlarged pixel by pixel from the working size
OUTPUTS = 8  # gallery, before/after, confidence, notes, scores, score notes, palette, target


class ColourHandlers:
    """What the Colourize tab's events call; models come loaded."""

    def __init__(self, context: Context):
        self.context = context
        self._palette_strip: str | None = None

    def colour_models(self) -> colourizing.ColourModels:
        """The loaded palette and nets; a user error saying why when none loaded."""
        colour = self.context.models.colour
        if colour is None or not colour.nets:
            raise user_error(self.context.models.colour_problem or "Colourization is unavailable.")
        return colour

    def checked_nets(self, networks: list[str] | None) -> list[str]:
        """The chosen nets in the assignment's order (all loaded ones for None; empty when none is
        ticked); a user error for one that is not loaded."""
        colour = self.colour_models()
        networks = [n for n in COLOUR_MODEL_NAMES if n in (networks if networks is not None else colour.nets)]
        missing = [n for n in networks if n not in colour.nets]
        if missing:
            raise user_error(f"{', '.join(missing)} is not loaded: {colour.problems.get(missing[0], '')}")
        return networks

    def palette_strip(self) -> str:
        """The palette's picture: the same for every photo, so written once (again only once the
        store has swept it away), not once per render."""
        if self._palette_strip is None or not os.path.exists(self._palette_strip):
            strip = render.palette_strip(palette_rgb(self.colour_models().palette))
            self._palette_strip = self.context.store.save(strip, lossless=True, name="palette_24_colours")
        return self._palette_strip

    @torch.inference_mode()
    def colorize(
        self,
        image: str | None,
        networks: list[str] | None = None,
        working_size: float = colourizing.DEFAULT_WORKING_SIZE,
        decoding: str = colourizing.DEFAULT_DECODING,
        temperature: float = colourizing.DEFAULT_TEMPERATURE,
    ) -> tuple[Gallery, tuple[str, str] | None, Gallery, str, list[list[Any]], str, str, str | None]:
        """Greyscale + each net's colourization (+ the original), before/after pair, confidence maps,
        notes; then each net's loss and accuracy against the photo's own colours, a note on them, the
        palette and the photo in palette colours (None for a greyscale photo). Pictures as paths."""
        colour = self.colour_models()
        loaded = read_photo(image, self.context.readable)
        networks = self.checked_nets(networks)
        if decoding not in colourizing.DECODINGS:
            raise user_error(f"Decoding must be one of: {', '.join(colourizing.DECODINGS)}.")
        if not networks:  # a choice the user is still making, not a mistake: say so where results go
            return [], None, [], NO_NETS, [], "", self.palette_strip(), None
        size = int(np.clip(working_size, colourizing.MIN_WORKING_SIZE, colourizing.MAX_WORKING_SIZE))
        started = time.perf_counter()
        grey = colourizing.greyscale(loaded.rgb)
        shape = colourizing.working_shape(*grey.shape, size)
        target = palette_target(loaded.rgb, colour.palette, shape) if loaded.is_colour else None
        labels = target.labels if target else None
        results = colourizing.colourize(colour, grey, networks, size, decoding, float(temperature), labels)
        seconds = time.perf_counter() - started

        def save(picture: np.ndarray, what: str, lossless: bool = False) -> str:
            return self.context.store.save(picture, lossless, name=download_name(image, what))

        grey_path = save(render.grey_picture(grey), "grey")
        gallery = [(grey_path, "Greyscale input")] + [(save(r.rgb, name), name) for name, r in results.items()]
        if loaded.is_colour:
            gallery.append((save(loaded.rgb, "original"), "Original colours"))
        best = next(n for n in COLOUR_NET_PREFERENCE if n in results)
        confidence = [
            (save(render.colour_map(r.confidence), f"{name}_confidence"), f"{name}: confidence")
            for name, r in results.items()
        ]
        notes = [
            f"Colourized {loaded.rgb.shape[1]}×{loaded.rgb.shape[0]} px with {', '.join(results)} in "
            f"{seconds * 1000:.0f} ms (colour predicted at {shape[1]}×{shape[0]}, {decoding} decoding). The slider "
            f"compares the greyscale input with **{best}**."
        ]
        if not loaded.is_colour:
            notes.append("The upload had no colour, so there is no original to compare with.")
        notes += [f"Note: {note}." for note in loaded.notes]
        rows = [
            [name, round(r.score.loss, 3), round(100 * r.score.accuracy, 1)] for name, r in results.items() if r.score
        ]
        target_path = save(render.upscale(target.rgb, TARGET_LONGEST), "target", lossless=True) if target else None
        return (
            gallery,
            (grey_path, gallery[1 + list(results).index(best)][0]),
            confidence,
            "\n\n".join(notes),
            rows,
            score_notes(results, shape, loaded),
            self.palette_strip(),
            target_path,
        )

    def rerender(
        self, image: str | None, networks: list[str] | None, working_size: float, decoding: str, temperature: float
    ) -> tuple[Any, ...]:
        """A setting changed: the results again with it, once there is a photo (before one, nothing
        happens and nothing is said: the user is still setting up)."""
        if not image or self.context.models.colour is None:
            return tuple(gr.skip() for _ in range(OUTPUTS))
        return self.colorize(image, networks, working_size, decoding, temperature)


def score_notes(results: dict[str, colourizing.Colourization], shape: tuple[int, int], loaded: LoadedImage) -> str:
    """What the scores say, in words: which net came closest to this photo's own colours."""
    if not loaded.is_colour:
        return NO_COLOURS
    scored = {name: r.score for name, r in results.items() if r.score is not None}
    best = min(scored, key=lambda name: scored[name].loss)
    verdict = (
        f"**{best}** comes closest on this photo: loss {scored[best].loss:.2f}, "
        f"{scored[best].accuracy:.0%} of pixels exactly right."
        if len(scored) > 1
        else f"**{best}**: loss {scored[best].loss:.2f}, {scored[best].accuracy:.0%} of pixels exactly right."
    )
    return (
        f"Each net against your photo's own colours at {shape[1]}×{shape[0]} px, every pixel snapped to "
        "the nearest of the 24 palette colours (the target below): the loss and accuracy that training "
        f"measures on CIFAR horses. {verdict}"
    )
