"""Turn whatever a user uploads into a uint8 RGB array the models can take, or a clear error.

Uploads come in every PIL mode (1, L, LA, P with or without transparency, RGBA, CMYK,
I;16, I, F...), with EXIF orientation tags, as one pixel or as 50-megapixel camera
frames, and sometimes as files that are not images at all or that end early. Every
path through :func:`load_image` either returns an :class:`LoadedImage` or raises
:class:`ImageLoadError` with a sentence a user can act on; the app shows that sentence
with ``gr.Error``.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Longest side kept: a 4096 x 4096 photo is 50 MB as uint8 RGB and 200 MB per float32 RGB
# intermediate, far more detail than the nets use, and memory per request stays bounded.
MAX_SIDE = 4096
# Most pixels decoded for one image. Only JPEG can be decoded reduced (libjpeg's 1/2, 1/4, 1/8
# draft); any other format is decoded whole before it is capped, so a small file declaring a huge
# size (a 13000 x 13000 PNG is 170 kB and 500 MB decoded) is refused from its header, before any
# pixel is decoded. Twice the cap's area (33.5 Mpx: 100 MB as RGB, e.g. 8192 x 4096) keeps
# panoramas and large scans; a 50-Mpx camera JPEG decodes at 1/2 scale, well under it.
MAX_DECODED_PIXELS = 2 * MAX_SIDE * MAX_SIDE

# PIL refuses to open any image over twice its MAX_IMAGE_PIXELS (179 Mpx), JPEG included.
_TOO_LARGE_TO_OPEN = (
    f"This image is too large to open: this app opens images of at most "
    f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. Shrink it and try again."
)

# Transparent pixels are shown on white, as browsers and image viewers show them.
_BACKGROUND = (255, 255, 255)

# Modes whose samples are wider than 8 bits; PIL's own convert("RGB") clips them at 255
# instead of scaling, so they are rescaled here.
_WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
_GREY_MODES = {"1", "L", "LA", "La"} | _WIDE_MODES


class ImageLoadError(ValueError):
    """The upload cannot be read as an image; the message says why in plain words."""


@dataclass(frozen=True)
class LoadedImage:
    rgb: np.ndarray  # uint8 [H, W, 3]
    is_colour: bool  # False when the source had no colour (grey mode, or R = G = B everywhere)
    original_size: tuple[int, int]  # (width, height) after EXIF rotation, before capping
    notes: tuple[str, ...] = field(default=())  # what was done to the upload, for the UI

    @property
    def capped(self) -> bool:
        return max(self.original_size) > max(self.rgb.shape[:2])


def _open(source: str | Path | bytes | Image.Image) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if source is None:
        raise ImageLoadError("No image was given: upload, paste or pick one first.")
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        return Image.open(handle)
    except FileNotFoundError:
        raise ImageLoadError("The file does not exist.") from None
    except UnidentifiedImageError:
        raise ImageLoadError(
            "This file is not an image that can be read (supported: PNG, JPEG, WebP, GIF, BMP, TIFF...)."
        ) from None
    except Image.DecompressionBombError:
        raise ImageLoadError(_TOO_LARGE_TO_OPEN) from None
    except OSError as error:
        _refuse_unreadable(error)
        # e.g. a header cut short ("Truncated File Read").
        raise ImageLoadError(
            f"This image file is damaged or incomplete and cannot be read ({error}). "
            "Try saving it again or use another file."
        ) from None


def _refuse_unreadable(error: OSError) -> None:
    """The file system's refusal (permission, a folder, an I/O error: errno set) is not a damaged
    image. Said without the path, which may be the server's own (a temporary upload)."""
    if error.errno is not None:
        raise ImageLoadError(f"The file cannot be read ({error.strerror or 'error ' + str(error.errno)}).") from None


def _wide_to_uint8(image: Image.Image) -> np.ndarray:
    """Scale a 16-bit, 32-bit integer or float greyscale image to uint8 [H, W]."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        top = 65535.0  # the full 16-bit range, as viewers display it
    elif image.mode == "F" and values.size and values.max() <= 1.0 and values.min() >= 0.0:
        top = 1.0  # float images in [0, 1], the usual convention
    elif values.size and values.max() <= 255 and values.min() >= 0:
        top = 255.0  # a wide container holding 8-bit data
    elif values.size and values.max() <= 65535 and values.min() >= 0:
        top = 65535.0
    else:
        # Arbitrary range (e.g. signed or huge floats): stretch min..max so detail is kept.
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        values = values - low
        top = max(high - low, 1e-12)
    return np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image, notes: list[str]) -> np.ndarray:
    """Any PIL mode -> uint8 [H, W, 3], compositing transparency on white."""
    if image.mode in _WIDE_MODES:
        grey = _wide_to_uint8(image)
        kind = "floating-point" if image.mode == "F" else "32-bit" if image.mode == "I" else "16-bit"
        notes.append(f"{kind} greyscale scaled to 8 bits")
        return np.repeat(grey[:, :, None], 3, axis=2)
    if (image.mode == "P" and "transparency" in image.info) or image.mode in {"PA", "La"}:
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "RGBa"}:
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("transparent areas shown on white")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _cap(image: Image.Image, max_side: int) -> Image.Image:
    width, height = image.size
    scale = max_side / max(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if image.mode in {"P", "1"} or image.mode in _WIDE_MODES:
        # Palette indices cannot be averaged; wide modes resample badly in PIL: widen first.
        image = image.convert("RGBA" if image.mode == "P" else "F")
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def load_image(source: str | Path | bytes | Image.Image | None, max_side: int = MAX_SIDE) -> LoadedImage:
    """Decode ``source`` (a path, raw bytes or a PIL image) into RGB, upright, at most ``max_side`` px.

    Raises :class:`ImageLoadError` for anything that is not a complete, readable image.
    """
    image = _open(source)
    try:
        return _decode(image, max_side)
    finally:
        if image is not source:
            image.close()  # multi-frame files stay open after load(); the caller's own image is left alone


def _decode(image: Image.Image, max_side: int) -> LoadedImage:
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # PIL warns above ~89 Mpx and refuses above ~179 Mpx; the refusal is reported below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animated GIF / multi-page TIFF: the first frame
                notes.append("first frame used")
            stored_size = image.size
            limit = max(MAX_DECODED_PIXELS, 2 * max_side * max_side)
            if image.format == "JPEG" and max(stored_size) > max_side:
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a 50-Mpx photo loads in a fraction of the time.
                scale = _jpeg_scale(stored_size, max_side, limit)
                image.draft(image.mode, (max(1, stored_size[0] // scale), max(1, stored_size[1] // scale)))
            decoded = image.size[0] * image.size[1]  # after draft: what load() will really decode
            if decoded > limit:
                raise ImageLoadError(_too_large(image.format, stored_size, limit))
            orientation = _orientation(image)  # after the size check: PNG's EXIF read decodes the pixels
            image.load()
            upright = ImageOps.exif_transpose(image) if orientation != 1 else image
            rgb = _to_rgb(_cap(upright, max_side), notes)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError:
        raise ImageLoadError(_TOO_LARGE_TO_OPEN) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        if isinstance(error, OSError):
            _refuse_unreadable(error)
        # Truncated files raise OSError("image file is truncated ...") at load time.
        raise ImageLoadError(
            f"This image file is damaged or incomplete and cannot be decoded ({error}). "
            "Try saving it again or use another file."
        ) from None
    if orientation != 1:
        notes.append("rotated upright as its EXIF orientation asks")
    # EXIF orientations 5-8 turn the picture by 90 degrees, swapping width and height.
    original_size = stored_size[::-1] if orientation in (5, 6, 7, 8) else stored_size
    if max(original_size) > max_side:
        notes.append(
            f"downscaled from {original_size[0]}×{original_size[1]} to {rgb.shape[1]}×{rgb.shape[0]} "
            f"(longest side capped at {max_side} px)"
        )
    is_colour = image.mode not in _GREY_MODES and not _all_grey(rgb)
    return LoadedImage(rgb=rgb, is_colour=is_colour, original_size=tuple(original_size), notes=tuple(notes))


def _jpeg_scale(size: tuple[int, int], max_side: int, limit: int) -> int:
    """The reduction libjpeg decodes a large JPEG at (1, 2, 4 or 8): the largest that keeps its longest
    side at least ``max_side`` (the sharpest result after the cap), or a larger one while that would
    still be more than ``limit`` pixels (a 36-Mpx 7360x4912 photo decodes at 1/2, not whole)."""
    scale = next((s for s in (8, 4, 2) if max(size) // s >= max_side), 1)
    while scale < 8 and math.ceil(size[0] / scale) * math.ceil(size[1] / scale) > limit:
        scale *= 2
    return scale


def _too_large(image_format: str | None, size: tuple[int, int], limit: int) -> str:
    """One limit, in megapixels, with an example size that meets it."""
    kind = f"a {image_format} image" if image_format else "an image"
    side = math.isqrt(limit // 2)
    advice = "Shrink it" if image_format == "JPEG" else "Save it as JPEG (decoded at reduced size) or shrink it"
    return (
        f"This image is too large to process: {size[0]}×{size[1]} px is {size[0] * size[1] / 1e6:.0f} megapixels, "
        f"and this app decodes at most {limit / 1e6:.0f} megapixels of {kind} "
        f"({2 * side}×{side} px, for example). {advice}, and try again."
    )


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = as stored); a malformed EXIF block counts as 1."""
    try:
        value = image.getexif().get(0x0112, 1)
    except (ValueError, TypeError, OSError, SyntaxError):
        return 1
    return value if value in range(1, 9) else 1


def _all_grey(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


# A mask is grey: a JPEG's chroma noise moves its channels apart by a few levels at most, a photo's
# colours by far more on a large share of its pixels.
COLOUR_SPREAD, COLOURED_SHARE = 48, 0.01


def load_mask(source: str | Path | bytes | Image.Image | None, size: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask as bool [H, W] at ``size`` = (width, height); white (> 127) = object.

    Masks are often stored smaller than their photos (the Weizmann horses are), so the
    mask is resized with nearest-neighbour to the photo's size; it must have about the
    same aspect ratio, otherwise it cannot belong to the photo. A picture in colour is
    refused rather than silently thresholded: it is most likely a photo given as the mask.
    """
    mask = load_image(source)
    height, width = mask.rgb.shape[:2]
    spread = mask.rgb.max(axis=2).astype(np.int16) - mask.rgb.min(axis=2)
    if np.mean(spread > COLOUR_SPREAD) > COLOURED_SHARE:
        raise ImageLoadError(
            "This picture is in colour, so it cannot be a mask: a mask is black (background) and white "
            "(object), the same shape as the photo."
        )
    aspect_mask, aspect_photo = width / height, size[0] / size[1]
    if abs(aspect_mask / aspect_photo - 1) > 0.05:
        raise ImageLoadError(
            f"The mask ({width}×{height}) does not have the photo's shape ({size[0]}×{size[1]}): "
            "it cannot be the photo's ground truth."
        )
    grey = Image.fromarray(mask.rgb.mean(axis=2).astype(np.uint8))
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.NEAREST)
    # JPEG masks hold noisy grey levels around 0 and 255: split at the middle.
    return np.asarray(grey) > 127
