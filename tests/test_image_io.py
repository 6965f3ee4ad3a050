"""colorseg.image_io: every PIL mode, EXIF orientation, size cap, tiny and broken files."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from support import huge_png

from colorseg.image_io import MAX_SIDE, ImageLoadError, load_image, load_mask


def _png_bytes(image: Image.Image, format: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **kwargs)
    return buffer.getvalue()


def _rgb(width: int = 6, height: int = 4) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "mode, colour",
    [
        ("RGB", True),
        ("RGBA", True),
        ("P", True),
        ("CMYK", True),
        ("L", False),
        ("LA", False),
        ("1", False),
        ("I;16", False),
        ("I", False),
        ("F", False),
    ],
)
def test_every_mode_becomes_rgb_uint8(tmp_path, mode, colour):
    source = (
        _rgb().convert(mode)
        if mode not in ("I;16", "I", "F")
        else Image.fromarray(
            (np.arange(24).reshape(4, 6) * 1000).astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode])
        )
    )
    fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"  # PNG cannot hold CMYK or 32-bit samples
    path = tmp_path / f"image.{fmt.lower()}"
    source.save(path, format=fmt)
    loaded = load_image(path)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (4, 6, 3)
    assert loaded.is_colour is colour
    assert loaded.original_size == (6, 4) and not loaded.capped


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    ramp = np.array([[0, 32768, 65535]], dtype=np.uint16)
    loaded = load_image(Image.fromarray(ramp))
    assert loaded.rgb[0, :, 0].tolist() == [0, 128, 255]
    assert any("16-bit" in note for note in loaded.notes)


def test_transparency_is_shown_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red, the rest fully transparent black
    loaded = load_image(Image.fromarray(rgba, "RGBA"))
    assert loaded.rgb[0, 0].tolist() == [255, 0, 0]
    assert loaded.rgb[1, 1].tolist() == [255, 255, 255]
    assert any("transparent" in note for note in loaded.notes)


def test_palette_image_with_transparency():
    image = Image.new("P", (3, 3), 0)
    image.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    image.info["transparency"] = 0
    loaded = load_image(_png_bytes(image, transparency=0))
    assert loaded.rgb[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (8, 4), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 4, 4))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.rgb.shape[:2] == (8, 4)  # height 8, width 4: upright
    assert loaded.original_size == (4, 8)
    top = loaded.rgb[1, 2].astype(int)
    assert top[2] > top[0], "after a clockwise turn the blue left half is on top"
    assert any("EXIF" in note for note in loaded.notes)


def test_one_pixel_image():
    loaded = load_image(_png_bytes(Image.new("RGB", (1, 1), (10, 20, 30))))
    assert loaded.rgb.shape == (1, 1, 3) and loaded.rgb[0, 0].tolist() == [10, 20, 30]


def test_huge_image_is_capped_and_says_so():
    wide = Image.new("RGB", (MAX_SIDE + 904, 10), (0, 120, 0))
    loaded = load_image(_png_bytes(wide))
    assert max(loaded.rgb.shape[:2]) == MAX_SIDE
    assert loaded.capped and loaded.original_size == (MAX_SIDE + 904, 10)
    assert any("capped" in note and "5000×10" in note for note in loaded.notes)


def test_huge_jpeg_uses_reduced_decoding_and_keeps_aspect():
    big = Image.new("RGB", (9000, 3000), (90, 90, 200))
    loaded = load_image(_png_bytes(big, format="JPEG"))
    assert loaded.rgb.shape[1] == MAX_SIDE and abs(loaded.rgb.shape[0] - MAX_SIDE / 3) <= 2
    assert loaded.original_size == (9000, 3000)


def test_first_frame_of_an_animation():
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    loaded = load_image(buffer.getvalue())
    assert loaded.rgb[0, 0, 0] > 200 and loaded.rgb[0, 0, 2] < 50
    assert "first frame used" in loaded.notes


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"%PDF-1.4 fake"])
def test_non_image_is_a_clear_error(tmp_path, data):
    path = tmp_path / "photo.png"  # the name lies about the content
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(path)


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_truncated_file_is_a_clear_error(format):
    data = _png_bytes(_rgb(64, 64), format=format)
    with pytest.raises(ImageLoadError, match="damaged or incomplete"):
        load_image(data[: len(data) // 2])


def test_missing_file_and_no_input():
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image("/nonexistent/photo.png")
    with pytest.raises(ImageLoadError, match="No image"):
        load_image(None)


def test_mask_is_resized_to_the_photo_and_thresholded():
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[:, 15:] = 200  # right half object, stored at a third of the photo's size
    mask[0, 0] = 100  # JPEG-like noise below the threshold
    loaded = load_mask(_png_bytes(Image.fromarray(mask)), size=(90, 60))
    assert loaded.shape == (60, 90) and loaded.dtype == bool
    assert loaded[:, 45:].all() and not loaded[:, :45].any()


def test_mask_of_another_shape_is_refused():
    with pytest.raises(ImageLoadError, match="shape"):
        load_mask(_png_bytes(Image.new("L", (10, 40))), size=(40, 10))


def test_a_small_file_declaring_a_huge_size_is_refused_before_decoding(monkeypatch):
    from PIL import ImageFile

    data = huge_png(13000, 13000)
    assert len(data) < 2_000_000 and 13000 * 13000 < 2 * Image.MAX_IMAGE_PIXELS, "under PIL's refusal limit"

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageLoadError, match=r"too large to process.*13000×13000.*4096 px"):
        load_image(data)


def test_a_huge_jpeg_is_still_decoded_reduced():
    big = Image.new("RGB", (12000, 6000), (90, 90, 200))
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=50)
    loaded = load_image(buffer.getvalue())
    assert max(loaded.rgb.shape) == 4096 and loaded.original_size == (12000, 6000)


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose header (SOF0) declares ``width`` x ``height``: opened, never decodable."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 80, 40)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


class _Decoded(Exception):
    pass


def test_a_large_camera_jpeg_is_decoded_reduced_not_refused(monkeypatch):
    from PIL import ImageFile

    def spy(self, *args, **kwargs):
        raise _Decoded(self.size)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    # 36 Mpx (a full-frame camera): libjpeg's 1/2 scale, not a refusal that tells a JPEG to become a JPEG.
    with pytest.raises(_Decoded) as decoded:
        load_image(_jpeg_declaring(7360, 4912))
    assert decoded.value.args[0] == (3680, 2456)


@pytest.mark.parametrize("data, fmt", [(huge_png(13000, 13000), "PNG"), (_jpeg_declaring(20000, 10000), "JPEG")])
def test_a_too_large_image_is_told_one_limit(data, fmt):
    with pytest.raises(ImageLoadError) as caught:
        load_image(data)
    message = str(caught.value)
    assert "any size" not in message and "4096 px on its longest side" not in message
    assert len(re.findall(r"at most (\d+) megapixels", message)) == 1, message
    assert ("Save it as JPEG" in message) == (fmt != "JPEG")


def test_an_unreadable_file_is_not_called_damaged_and_its_path_is_not_shown(tmp_path, monkeypatch):
    from colorseg import image_io

    def refused(source, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(source))

    monkeypatch.setattr(image_io.Image, "open", refused)
    with pytest.raises(ImageLoadError) as caught:
        load_image(tmp_path / "gradio" / "upload.png")
    assert str(caught.value) == "The file cannot be read (Permission denied)."


def test_a_colour_photo_is_refused_as_a_mask_but_a_noisy_grey_jpeg_is_not(tmp_path):
    from colorseg.image_io import load_mask

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(photo)
    with pytest.raises(ImageLoadError, match="in colour, so it cannot be a mask"):
        load_mask(photo, (60, 40))
    grey = np.zeros((40, 60, 3), dtype=np.uint8)
    grey[10:30, 20:40] = 255
    jpeg = tmp_path / "mask.jpg"
    Image.fromarray(grey).save(jpeg, quality=70)  # an RGB JPEG of a mask: a little chroma noise
    assert load_mask(jpeg, (60, 40))[20, 30] and not load_mask(jpeg, (60, 40))[0, 0]
