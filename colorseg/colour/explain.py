"""Looking inside the colour nets: activations per layer, one pixel's colour distribution,
and a probe for the checkerboard artefacts of transposed convolutions.

Everything here works on one image and returns plain arrays (uint8 pictures or tensors) so
the app can show them; nothing here draws into a UI.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from colorseg.colour.inference import (
    DEFAULT_TEMPERATURE,
    DEFAULT_WORKING_SIZE,
    chroma_offset,
    confidence_of,
    decode_offset,
    working_shape,
)
from colorseg.colour.layer_stats import layer_modules, layer_table
from colorseg.files import figure_to_array

# One lookup table instead of calling the colormap per pixel: 256 levels are what uint8 shows.
_VIRIDIS = (matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class Activation:
    name: str  # qualified module name, as in colorseg.colour.layer_stats.layer_table
    kind: str  # e.g. "Conv2d 3×3, 1→32"
    tensor: torch.Tensor  # float32 [C, H, W], the layer's output for the image
    outputs: int  # Question A.3 counts, from the layer table row
    weights: int
    connections: int
    inputs_from: tuple[str, ...]  # layers (or "input") whose outputs this layer reads, in order
    consumes_skip: bool  # reads more than the layer just before it: a skip connection (UNet's concatenations)


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration (BatchNorm must use its running statistics), then restored."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _resolver(producers: dict, image: torch.Tensor):
    """Map an autograd node to the layers whose outputs flow into it. Walking the graph, not
    reading attribute names, finds skips in any net: a torch.cat node leads back to each of
    its parts; activations (ReLU) were registered as aliases of the layer before them."""

    def resolve(node) -> tuple[str, ...]:
        if node is None:
            return ()
        if node in producers:
            return producers[node]
        if getattr(node, "variable", None) is image:  # AccumulateGrad of the input
            return ("input",)
        found: list[str] = []
        for parent, _ in node.next_functions:
            found += [name for name in resolve(parent) if name not in found]
        return tuple(found)

    def sources(tensor: torch.Tensor) -> tuple[str, ...]:
        return ("input",) if tensor is image else resolve(tensor.grad_fn)

    return sources


def capture_activations(model: nn.Module, grey: torch.Tensor) -> list[Activation]:
    """Every layer's output for ``grey`` [1, C, H, W], in execution order, with its A.3 counts.

    The layers are layer_table's (same modules, same order); the forward pass builds an
    autograd graph (even when called under inference mode) only to trace where each
    layer's input comes from.
    """
    if grey.ndim != 4 or grey.shape[0] != 1:
        raise ValueError(f"expected one image [1, C, H, W], got shape {tuple(grey.shape)}")
    table = layer_table(model, grey.shape[2], grey.shape[3], in_channels=grey.shape[1])
    layers, names = set(layer_modules(model)), {m: n for n, m in model.named_modules()}
    captured: list[tuple[str, torch.Tensor, tuple[str, ...]]] = []
    producers: dict = {}
    with torch.inference_mode(False), torch.enable_grad(), _evaluating(model):
        image = grey.detach().clone().float().requires_grad_(True)  # a normal tensor even if grey is an inference one
        sources = _resolver(producers, image)

        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            read = tuple(dict.fromkeys(n for part in inputs for n in sources(part)))
            if module in layers:
                producers[output.grad_fn] = (names[module],)
                captured.append((names[module], output[0].detach().float().cpu(), read))
            else:
                producers[output.grad_fn] = read  # an activation passes its layer's output on

        leaves = [m for m in model.modules() if not any(m.children())]
        handles = [leaf.register_forward_hook(record) for leaf in leaves]
        try:
            model(image.to(next(model.parameters())))
        finally:
            for handle in handles:
                handle.remove()
    if [name for name, _, _ in captured] != [row.name for row in table.rows]:
        raise RuntimeError("the captured layers do not match the layer table: a layer ran twice or not at all")
    previous = ["input"] + [name for name, _, _ in captured[:-1]]
    return [
        Activation(row.name, row.kind, tensor, row.outputs, row.weights, row.connections, read, read != (before,))
        for row, (_, tensor, read), before in zip(table.rows, captured, previous)
    ]


def colourmap(values: np.ndarray) -> np.ndarray:
    """float [...] in [0, 1] -> uint8 [..., 3] through viridis."""
    return _VIRIDIS[np.clip(np.rint(values * 255), 0, 255).astype(np.intp)]


def channel_grid(activation: torch.Tensor, max_channels: int = 32, cell: int = 48, gap: int = 1) -> np.ndarray:
    """Tile the first ``max_channels`` maps of [C, H, W] in a near-square grid, uint8 [., ., 3].

    Each map is scaled to its own min/max (channels differ in range by orders of magnitude)
    and enlarged by the integer factor that brings its longest side near ``cell`` px, with
    nearest-neighbour so that a 8x8 map shows its 64 values, not a blur. A constant map is
    drawn at the colormap's low end. Tiles are separated by ``gap`` white pixels.
    """
    maps = activation[:max_channels].detach().float().cpu().numpy()
    count, height, width = maps.shape
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    normalised = (maps - low) / np.where(span > 0, span, 1)
    scale = max(1, cell // max(height, width))
    tiles = colourmap(normalised.repeat(scale, axis=1).repeat(scale, axis=2))  # [C, h, w, 3]
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    tile_h, tile_w = height * scale, width * scale
    grid = np.full((rows * (tile_h + gap) - gap, columns * (tile_w + gap) - gap, 3), 255, np.uint8)
    for index, tile in enumerate(tiles):
        top, left = (index // columns) * (tile_h + gap), (index % columns) * (tile_w + gap)
        grid[top : top + tile_h, left : left + tile_w] = tile
    return grid


def working_grey(grey: np.ndarray, working_size: int = DEFAULT_WORKING_SIZE) -> torch.Tensor:
    """The net's input [1, 1, h, w] for a full-resolution grey float32 [H, W]: the same
    antialiased resize as colour.inference.colourize, so a pixel explained here is one it coloured."""
    small_h, small_w = working_shape(*grey.shape, working_size)
    full = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))[None, None]
    return F.interpolate(full, size=(small_h, small_w), mode="bilinear", antialias=True, align_corners=False)


def working_pixel(y: int, x: int, full_shape: tuple[int, int], small_shape: tuple[int, int]) -> tuple[int, int]:
    """The working-resolution pixel (row, column) under a click at full-resolution (y, x).

    colourize upsamples with align_corners=False, where pixel centres map as
    (Y + 0.5) * h / H - 0.5; the nearest working pixel to that is floor((Y + 0.5) * h / H).
    """
    (height, width), (small_h, small_w) = full_shape, small_shape
    row = min(small_h - 1, max(0, math.floor((y + 0.5) * small_h / height)))
    column = min(small_w - 1, max(0, math.floor((x + 0.5) * small_w / width)))
    return row, column


@dataclass(frozen=True)
class PixelDistribution:
    y: int  # working-resolution pixel
    x: int
    probs: np.ndarray  # float64 [K], softmax of the logits: the net's distribution, sums to 1
    annealed_probs: np.ndarray  # float64 [K], softmax(logits / T): the weights of the annealed mean
    argmax: int  # palette index of the most likely colour
    argmax_colour: np.ndarray  # uint8 [3], that palette colour
    annealed_mean_colour: np.ndarray  # uint8 [3], the colour annealed-mean decoding paints here
    confidence: float  # 1 - normalised entropy of ``probs``
    temperature: float


@torch.inference_mode()
def pixel_distribution(
    model: nn.Module,
    grey: torch.Tensor,
    palette: torch.Tensor,
    y: int,
    x: int,
    temperature: float = DEFAULT_TEMPERATURE,
) -> PixelDistribution:
    """The colour distribution at working-resolution pixel (y, x) of ``grey`` [1, 1, h, w]
    (see :func:`working_grey`); ``palette`` float [K, 3] in [0, 1].

    Decoding goes through colour.inference's own functions so the numbers are the ones the result
    shows: colourize predicts chroma only, so the annealed-mean colour is this pixel's grey
    plus the mean chroma offset, as it appears (before upsampling) in the result.
    """
    height, width = grey.shape[-2:]
    if not (0 <= y < height and 0 <= x < width):
        raise IndexError(f"pixel ({y}, {x}) is outside the {height}x{width} working image")
    with _evaluating(model):
        parameter = next(model.parameters())
        logits = model(grey.to(parameter)).float()[:, :, y : y + 1, x : x + 1].cpu()  # [1, K, 1, 1]
    palette = palette.float().cpu()
    count = len(palette)
    # decode_offset with the identity as "palette" returns its own softmax weights: the
    # annealed distribution by exactly colour.inference's formula (temperature floor included).
    annealed = decode_offset(logits, torch.eye(count), "annealed mean", temperature)[0, :, 0, 0]
    offset = decode_offset(logits, chroma_offset(palette), "annealed mean", temperature)[0, :, 0, 0]
    mean_colour = (offset + grey[0, 0, y, x].float().cpu()).clamp(0, 1)
    probs = logits.double().softmax(dim=1)[0, :, 0, 0]
    best = int(logits[0, :, 0, 0].argmax())
    return PixelDistribution(
        y=y,
        x=x,
        probs=probs.numpy(),
        annealed_probs=annealed.double().numpy(),
        argmax=best,
        argmax_colour=_to_uint8(palette[best]),
        annealed_mean_colour=_to_uint8(mean_colour),
        confidence=float(confidence_of(logits)[0, 0, 0, 0]),
        temperature=float(temperature),
    )


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def distribution_chart(
    dist: PixelDistribution, palette: torch.Tensor, width: float = 6.0, height: float = 2.4
) -> np.ndarray:
    """Bar chart of ``dist.probs``, each bar in its palette colour, the argmax bar outlined."""
    colours = palette.float().cpu().clamp(0, 1).numpy()
    figure = Figure(figsize=(width, height), dpi=100)
    axis = figure.add_subplot()
    # Thin grey edges keep near-white palette colours visible on the white background.
    edges = ["black" if k == dist.argmax else "0.6" for k in range(len(colours))]
    widths = [2.0 if k == dist.argmax else 0.5 for k in range(len(colours))]
    axis.bar(np.arange(len(colours)), dist.probs, color=colours, edgecolor=edges, linewidth=widths)
    axis.set_xticks(np.arange(len(colours)))
    axis.tick_params(axis="x", labelsize=6)
    axis.set_xlabel("palette colour")
    axis.set_ylabel("probability")
    axis.set_ylim(0, max(0.05, float(dist.probs.max()) * 1.1))
    axis.set_title(
        f"pixel ({dist.y}, {dist.x}): colour {dist.argmax} at {dist.probs[dist.argmax]:.0%}, "
        f"confidence {dist.confidence:.2f}",
        fontsize=9,
    )
    figure.tight_layout()
    return figure_to_array(figure)
