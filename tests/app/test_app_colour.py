"""The Colourize tab's handler: every image mode, settings, odd sizes, clear errors, the scores
against the photo's own colours, download names, re-rendering on every setting."""

from __future__ import annotations

import os

import gradio as gr
import numpy as np
import pytest
import torch
from app_fakes import fake_context
from app_support import photo, read_picture, save_photo
from PIL import Image

from colorseg.app.colour_handlers import NO_COLOURS, NO_NETS, ColourHandlers


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
    gallery, (before, after), confidence, notes, *_ = handlers.colorize(str(path))
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
    gallery, (_, after), confidence, notes, *_ = handlers.colorize(
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
    gallery, _, _, notes, *_ = handlers.colorize(str(huge), ["UNet"])
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


def test_colorize_needs_a_known_decoding(handlers, tmp_path):
    with pytest.raises(gr.Error, match="Decoding"):
        handlers.colorize(str(save_photo(tmp_path / "photo.png")), decoding="best")


def test_no_net_ticked_is_a_sentence_in_the_notes_not_an_error(handlers, tmp_path):
    gallery, slider, confidence, notes, scores, score_notes, palette, target = handlers.colorize(
        str(save_photo(tmp_path / "photo.png")), []
    )
    assert (gallery, slider, confidence, scores, target) == ([], None, [], [], None) and notes == NO_NETS
    assert "tick at least one" in notes and read_picture(palette).ndim == 3


def test_each_net_is_scored_against_the_photos_own_palette_colours(handlers, tmp_path):
    from colorseg.colour.inference import greyscale, working_shape
    from colorseg.colour.scoring import palette_target, score

    path = save_photo(tmp_path / "photo.png", 64, 48)
    *_, scores, notes, palette, target = handlers.colorize(str(path), working_size=32)
    assert [row[0] for row in scores] == ["PoolUpsampleNet", "ConvTransposeNet", "UNet"]
    colour = handlers.context.models.colour
    expected = palette_target(photo(64, 48), colour.palette, working_shape(48, 64, 32))
    grey = torch.from_numpy(greyscale(photo(64, 48)))[None, None]
    small = torch.nn.functional.interpolate(grey, size=(24, 32), mode="bilinear", antialias=True)
    with torch.inference_mode():
        unet = score(colour.nets["UNet"](small), expected.labels)
    assert scores[2] == ["UNet", round(unet.loss, 3), round(100 * unet.accuracy, 1)]
    assert "32×24 px" in notes and "comes closest on this photo" in notes
    assert np.array_equal(read_picture(target)[::16, ::16], expected.rgb), "the target, 16x enlarged"
    assert read_picture(palette).shape[1] == 24 * 32, "a swatch per palette colour"
    assert handlers.colorize(str(path))[6] == palette, "the palette is written once, not per render"


def test_a_greyscale_photo_has_no_colours_to_score_against(handlers, tmp_path):
    *_, scores, notes, palette, target = handlers.colorize(str(save_photo(tmp_path / "grey.png", mode="L")))
    assert scores == [] and target is None and notes == NO_COLOURS and "no colours" in notes
    assert read_picture(palette).ndim == 3, "the palette is still shown"


def test_results_download_under_the_photos_name(handlers, tmp_path):
    path = save_photo(tmp_path / "My horse (1).png", 64, 48)
    gallery, slider, confidence, *_, target = handlers.colorize(str(path))
    names = [os.path.basename(p) for p, _ in gallery + confidence] + [os.path.basename(target)]
    assert names == [
        "My_horse_1_grey.jpg",
        "My_horse_1_PoolUpsampleNet.jpg",
        "My_horse_1_ConvTransposeNet.jpg",
        "My_horse_1_UNet.jpg",
        "My_horse_1_original.jpg",
        "My_horse_1_PoolUpsampleNet_confidence.jpg",
        "My_horse_1_ConvTransposeNet_confidence.jpg",
        "My_horse_1_UNet_confidence.jpg",
        "My_horse_1_target.png",
    ]
    assert [os.path.basename(p) for p in slider] == ["My_horse_1_grey.jpg", "My_horse_1_UNet.jpg"]


@pytest.mark.parametrize(
    "photo_path, expected",
    [
        ("/tmp/colorseg/0a1b/horse.jpg", "horse_UNet"),  # gradio keeps an upload's own name in a hash folder
        ("/x/Ça va? été 2024!.png", "Ca_va_ete_2024_UNet"),
        ("/x/../../etc/passwd", "passwd_UNet"),
        ("/x/%%%.png", "photo_UNet"),
        ("/x/日本の馬.png", "photo_UNet"),
        (None, "photo_UNet"),
        ("/tmp/colorseg/abc/tmp0123456789.png", "photo_UNet"),  # gradio's name for an upload without one
        ("/x/" + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.jpg", "photo_UNet"),
        ("/x/" + "a" * 70 + ".png", "a" * 64 + "_UNet"),
        ("/x/" + "b" * 63 + "-c.png", "b" * 63 + "_UNet"),
    ],
)
def test_download_name(photo_path, expected):
    from colorseg.app.store import download_name

    assert download_name(photo_path, "UNet") == expected
    assert download_name(photo_path, "a/b c") == expected.removesuffix("UNet") + "a_b_c"


def test_a_picture_name_that_is_not_safe_is_refused(handlers):
    with pytest.raises(ValueError, match="letters, digits"):
        handlers.context.store.save(np.zeros((2, 2, 3), np.uint8), name="../escape")


def test_a_setting_change_renders_again_once_there_is_a_photo(handlers, tmp_path):
    assert handlers.rerender(None, ["UNet"], 64, "argmax", 0.38) == tuple(gr.skip() for _ in range(8))
    path = str(save_photo(tmp_path / "photo.png"))
    handlers.colorize(path)  # the palette is written by the first render
    before = _pictures(handlers)
    first = handlers.colorize(path, ["UNet"], 64, "annealed mean", 0.38)
    once = _pictures(handlers) - before
    again = handlers.rerender(path, ["UNet"], 64, "argmax", 0.38)
    assert again[3].startswith("Colourized") and "argmax" in again[3] and again[0][1][0] != first[0][1][0]
    assert len(_pictures(handlers) - before) == 2 * len(once), "a re-render writes what one render writes"


def _pictures(handlers) -> set:
    return {str(p) for p in handlers.context.store.directory.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def demo(handlers):
    from colorseg.app.demo import build_demo

    return build_demo(models=handlers.context.models)


def _block(demo, elem_id):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_every_setting_re_renders_once_with_the_inference_pool(demo):
    from colorseg.app.settings import INFERENCE

    rerenders = [f for f in demo.fns.values() if getattr(f.fn, "__func__", None) is ColourHandlers.rerender]
    triggers = {(type(demo.blocks[block]).__name__, event) for f in rerenders for block, event in f.targets}
    assert triggers == {("CheckboxGroup", "change"), ("Radio", "change"), ("Slider", "release")}
    assert len(rerenders) == 4 and sum(len(f.targets) for f in rerenders) == 4, "one render per change"
    for f in rerenders:
        assert f.trigger_mode == "always_last" and f.api_visibility == "private"
        assert (f.concurrency_limit, f.concurrency_id) == (INFERENCE["concurrency_limit"], INFERENCE["concurrency_id"])
    colorize = next(f for f in demo.fns.values() if f.api_name == "colorize")
    assert [b._id for b in colorize.outputs] == [b._id for b in rerenders[0].outputs]
    sliders = [demo.blocks[block] for f in rerenders for block, event in f.targets if event == "release"]
    assert {s.label for s in sliders} == {"Working size (px)", "Temperature"}


def test_the_before_after_slider_is_output_only(demo):
    slider = _block(demo, "colour-slider")
    assert isinstance(slider, gr.ImageSlider) and slider.interactive is False


def test_the_cifar_sized_examples_are_offered_with_a_note(demo):
    from colorseg.app import examples

    small = examples.cifar_sized()
    assert len(small) == 9 and all(p.parent.name == "cifar32" for p in small)
    assert all(Image.open(p).size == (32, 32) for p in small)
    datasets = [b for b in demo.blocks.values() if isinstance(b, gr.Dataset) and b.label and "CIFAR-sized" in b.label]
    assert len(datasets) == 1 and len(datasets[0].samples) == 9
    notes = " ".join(str(b.value) for b in demo.blocks.values() if isinstance(b, gr.Markdown))
    assert "32×32 px, the size of the CIFAR-10" in notes


def test_upload_mistakes_are_user_errors_without_a_traceback(handlers, tmp_path):
    """Shared by both tabs (colorseg.app.uploads): the message reaches the user, the log stays clean."""
    from colorseg.app.uploads import read_mask, read_photo

    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    readable = handlers.context.readable
    for call in (
        lambda: read_photo(None, readable),
        lambda: read_photo(str(junk), readable),
        lambda: read_photo("/etc/passwd", readable),
        lambda: read_mask(str(junk), (4, 4), readable),
        lambda: handlers.colorize(str(junk)),
        lambda: handlers.colorize(None),
    ):
        with pytest.raises(gr.Error) as caught:
            call()
        assert caught.value.print_exception is False, caught.value.message
