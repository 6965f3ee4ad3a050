"""Every picture the app draws, as uint8 arrays: greyscale, colour maps, segmentation
overlays, the heads' disagreement, masks, cut-outs and labelled tiles."""

from __future__ import annotations

import matplotlib
import numpy as np

from colorseg.segmentation.explain import ERROR_COLOURS, HEAD_COLOURS, cutout_rgba, error_overlay

# One colour per segmentation head, the same in overlays, the disagreement map, the charts and the
# legend (colorblind-safe; each colour has one meaning in the app: colorseg.segmentation.explain).
HEAD_TITLES = {"cross_entropy": "Cross-entropy head", "soft_iou": "Soft-IoU head"}

# matplotlib's viridis, dark purple (unsure) to yellow (sure), as a 256-entry lookup table:
# one indexing per pixel instead of calling the colormap.
_VIRIDIS = (matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)

__all__ = [
    "ERROR_COLOURS",
    "HEAD_COLOURS",
    "HEAD_TITLES",
    "colour_map",
    "cutout",
    "disagreement_map",
    "distribution_bars",
    "errors",
    "grey_picture",
    "hex_colour",
    "mask_picture",
    "overlay",
    "swatch",
    "upscale",
]


def grey_picture(grey: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W, 3]."""
    return np.repeat((grey * 255 + 0.5).astype(np.uint8)[:, :, None], 3, axis=2)


def colour_map(values: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W, 3] with the viridis ramp."""
    return _VIRIDIS[(np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8)]


def _boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` px of its edge (erosion by shifting), bool [H, W]."""
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def overlay(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """The photo with the background dimmed, the object lightly tinted and outlined in ``colour``."""
    tint = np.array(colour, dtype=np.float32)
    out = rgb.astype(np.float32) * 0.35
    out[mask] = rgb[mask] * 0.75 + tint * 0.25
    out[_boundary(mask, max(1, max(mask.shape) // 256))] = tint
    return out.astype(np.uint8)


def disagreement_map(rgb: np.ndarray, mask_ce: np.ndarray, mask_iou: np.ndarray) -> np.ndarray:
    """The photo dimmed to grey; object pixels of only one head in that head's colour, of both in white."""
    grey = rgb.astype(np.float32).mean(axis=2, keepdims=True) * 0.4
    out = np.repeat(grey, 3, axis=2)
    for where, colour in (
        (mask_ce & mask_iou, (255, 255, 255)),
        (mask_ce & ~mask_iou, HEAD_COLOURS["cross_entropy"]),
        (mask_iou & ~mask_ce, HEAD_COLOURS["soft_iou"]),
    ):
        out[where] = out[where] * 0.3 + np.array(colour, dtype=np.float32) * 0.7
    return out.astype(np.uint8)


def mask_picture(mask: np.ndarray) -> np.ndarray:
    """bool [H, W] -> uint8 [H, W] 0/255, saved as a lossless PNG for download."""
    return mask.astype(np.uint8) * 255


def errors(rgb: np.ndarray, mask: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Right (true positive) bluish green, extra purple, missed yellow over the photo (ERROR_COLOURS)."""
    return error_overlay(rgb, mask, target)


def cutout(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The object on a transparent background, RGBA [H, W, 4]."""
    return cutout_rgba(rgb, mask)


def swatch(colour: np.ndarray, size: int = 48) -> np.ndarray:
    """A plain square of one uint8 RGB colour."""
    return np.broadcast_to(np.asarray(colour, np.uint8), (size, size, 3)).copy()


def upscale(picture: np.ndarray, longest: int) -> np.ndarray:
    """Enlarge by the integer factor (nearest neighbour) that brings the longest side near ``longest``,
    so that a tiny map shows its pixels instead of a browser's blur."""
    factor = max(1, longest // max(picture.shape[:2]))
    return picture.repeat(factor, axis=0).repeat(factor, axis=1)


def distribution_bars(
    probs: np.ndarray, palette: np.ndarray, best: int, title: str, size: tuple[int, int] = (480, 200)
) -> np.ndarray:
    """A bar per palette colour, in that colour, height = probability; the likeliest outlined
    in black, uint8 [H, W, 3]. Drawn with PIL (about 1 ms): the same chart as
    colour_explain.distribution_chart, whose matplotlib figure takes 150-250 ms per net here.

    ``palette`` uint8 [K, 3]; the y axis runs to the largest probability (at least 5 %)."""
    from PIL import Image, ImageDraw

    width, height = size
    left, right, top, bottom = 34, 6, 22, 18
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 4), title, fill="black")
    top_value = max(0.05, float(probs.max()) * 1.1)
    plot_h, count = height - top - bottom, len(probs)
    step = (width - left - right) / count
    for level in (0.0, top_value / 2, top_value):  # y axis: 0, half, top
        y = top + plot_h - level / top_value * plot_h
        draw.line([(left - 3, y), (width - right, y)], fill=(225, 225, 225) if level else "black")
        draw.text((2, y - 6), f"{level:.0%}", fill="black")
    for k, p in enumerate(probs):
        x0, x1 = left + k * step + 1, left + (k + 1) * step - 1
        y0 = top + plot_h - float(p) / top_value * plot_h
        edge = "black" if k == best else (150, 150, 150)  # grey edges keep near-white colours visible
        draw.rectangle(
            [x0, min(y0, top + plot_h - 1), x1, top + plot_h],
            fill=tuple(int(c) for c in palette[k]),
            outline=edge,
            width=2 if k == best else 1,
        )
        if k % 2 == 0 or k == best:
            draw.text((x0 + 1, top + plot_h + 3), str(k), fill="black")
    return np.asarray(image)


def hex_colour(rgb: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def mark(rgb: np.ndarray, y: int, x: int) -> np.ndarray:
    """The picture with a ring (white inside black, visible on any colour) around pixel (y, x)."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    radius = max(6, max(rgb.shape[:2]) // 40)
    for extra, colour in ((2, "black"), (0, "white")):
        r = radius + extra
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2 + extra)
    return np.asarray(image)


def palette_strip(palette: np.ndarray, swatch_size: int = 32) -> np.ndarray:
    """The palette uint8 [K, 3] as one row of numbered swatches, uint8 [H, K * swatch_size, 3]: the
    numbers are the colour indices that the pixel inspector's bars and the nets' outputs use."""
    from PIL import Image, ImageDraw

    count = len(palette)
    strip = np.repeat(palette.astype(np.uint8), swatch_size, axis=0)[None].repeat(swatch_size, axis=0)
    strip[:, ::swatch_size] = 255  # a white line between swatches keeps neighbours apart
    image = Image.new("RGB", (count * swatch_size, swatch_size + 14), "white")
    image.paste(Image.fromarray(strip), (0, 0))
    draw = ImageDraw.Draw(image)
    for k in range(count):
        draw.text((k * swatch_size + 3, swatch_size + 1), str(k), fill="black")
    return np.asarray(image)
