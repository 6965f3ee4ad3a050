"""The Colourize tab's handler: every image mode, settings, odd sizes, clear errors."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from app_fakes import fake_context
from app_support import photo, read_picture, save_photo
from PIL import Image

from colorseg.app.colour_tab import ColourHandlers


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    context = fake_context(
        tmp_path_factory.mktemp("weights"), tmp_path_factory.mktemp("pictures"), tmp_path_factory.getbasetemp()
    )
    return ColourHandlers(context)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P", "CMYK", "L", "1", "I;16"])
def test_colorize_every_image_mode(handlers, tmp_path, mode):
    if mode == "I;16":
        path = tmp_path / "deep.png"
        Image.fromarray((photo().mean(axis=2) * 257).astype(np.uint16)).save(path)
    else:
        path = save_photo(tmp_path / f"photo.{'tiff' if mode == 'CMYK' else 'png'}", mode=mode)
    gallery, (before, after), confidence, notes = handlers.colorize(str(path))
    captions = [caption for _, caption in gallery]
    assert len({path for path, _ in gallery}) == len(gallery), "one new file per picture"
    coloured = mode in ("RGB", "RGBA", "P", "CMYK")
    assert captions == ["Greyscale input", "PoolUpsampleNet", "ConvTransposeNet", "UNet"] + (
        ["Original colours"] if coloured else []
    )
    assert all(read_picture(image).shape == (48, 64, 3) for image, _ in gallery)
    assert before == gallery[0][0] and after == gallery[3][0], "slider: grey vs UNet"
    assert len(confidence) == 3 and read_picture(confidence[0][0]).ndim == 3
    assert "64×48" in notes and ("no original" in notes) is not coloured


def test_colorize_chosen_nets_and_settings(handlers, tmp_path):
    path = save_photo(tmp_path / "photo.jpg")
    gallery, (_, after), confidence, notes = handlers.colorize(
        str(path), ["PoolUpsampleNet"], working_size=32, decoding="argmax", temperature=0.5
    )
    assert [caption for _, caption in gallery] == ["Greyscale input", "PoolUpsampleNet", "Original colours"]
    assert after == gallery[1][0] and len(confidence) == 1
    assert "32×24" in notes and "argmax" in notes


def test_colorize_one_pixel_and_capped_images(handlers, tmp_path):
    gallery, *_ = handlers.colorize(str(save_photo(tmp_path / "dot.png", 1, 1)))
    assert read_picture(gallery[1][0]).shape == (1, 1, 3)
    huge = tmp_path / "wide.png"
    Image.new("L", (5000, 6), 128).save(huge)
    gallery, _, _, notes = handlers.colorize(str(huge), ["UNet"])
    assert read_picture(gallery[1][0]).shape == (5, 4096, 3)
    assert "capped at 4096" in notes and "5000×6" in notes


@pytest.mark.parametrize(
    "content, message",
    [(b"this is a text file", "not an image"), (None, "No photo yet")],
)
def test_colorize_bad_input_is_a_clear_error(handlers, tmp_path, content, message):
    path = None
    if content is not None:
        path = tmp_path / "fake.png"
        path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        handlers.colorize(str(path) if path else None)


def test_colorize_truncated_file(handlers, tmp_path):
    path = save_photo(tmp_path / "photo.jpg", 128, 128)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(gr.Error, match="damaged or incomplete"):
        handlers.colorize(str(path))


def test_colorize_needs_a_net_and_a_known_decoding(handlers, tmp_path):
    path = str(save_photo(tmp_path / "photo.png"))
    with pytest.raises(gr.Error, match="at least one network"):
        handlers.colorize(path, [])
    with pytest.raises(gr.Error, match="Decoding"):
        handlers.colorize(path, decoding="best")
