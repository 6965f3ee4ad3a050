"""The app's handlers, start-up with missing or damaged weights, examples and the Model tab."""

from __future__ import annotations

import os
import time

import gradio as gr
import numpy as np
import pytest
from PIL import Image
from test_app_support import (
    install_fake_segment_module,
    make_all_weights,
    make_colour_weights,
    make_segmentation_weights,
    photo,
    save_photo,
)

import app
from colorseg.weights_io import COLOUR_STEMS, PALETTE_STEM


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_all_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return app.PictureStore(tmp_path_factory.mktemp("pictures"))


@pytest.fixture(scope="module")
def handlers(weights, store, tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        install_fake_segment_module(monkeypatch)  # only while loading: handlers keep the fake segmenter
        models = app.load_models(weights, device="cpu")
    # These tests call the handlers with files in pytest's own temporary folders.
    return app.Handlers(models, store, app.ReadableFiles(folders=[tmp_path_factory.getbasetemp()]))


def read(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_demo_is_built_at_import_and_not_launched():
    assert isinstance(app.demo, gr.Blocks)
    assert not getattr(app.demo, "is_running", False)
    names = {dependency.get("api_name") for dependency in app.demo.config["dependencies"]}
    assert {"colorize", "segment"} <= names


# ---------------------------------------------------------------- colourize


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
    assert all(read(image).shape == (48, 64, 3) for image, _ in gallery)
    assert before == gallery[0][0] and after == gallery[3][0], "slider: grey vs UNet"
    assert len(confidence) == 3 and read(confidence[0][0]).ndim == 3
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
    assert read(gallery[1][0]).shape == (1, 1, 3)
    huge = tmp_path / "wide.png"
    Image.new("L", (5000, 6), 128).save(huge)
    gallery, _, _, notes = handlers.colorize(str(huge), ["UNet"])
    assert read(gallery[1][0]).shape == (5, 4096, 3)
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


# ---------------------------------------------------------------- segment


def test_segment_without_ground_truth(handlers, tmp_path):
    overlay_ce, overlay_iou, mask_ce, mask_iou, disagreement, table, notes = handlers.segment(
        str(save_photo(tmp_path / "photo.png"))
    )
    for image in (overlay_ce, overlay_iou, disagreement):
        assert read(image).shape == (48, 64, 3) and image.endswith(".jpg")
    mask_ce, mask_iou = read(mask_ce), read(mask_iou)
    assert set(np.unique(mask_ce)) <= {0, 255} and mask_ce.shape == (48, 64), "masks are lossless PNG"
    assert (mask_iou >= mask_ce).all(), "the fake soft-IoU head marks a superset"
    assert [row[0] for row in table] == ["Cross-entropy head", "Soft-IoU head"]
    assert table[0][2:] == ["—", "—", "—"]
    assert "ground-truth mask" in notes and "agree on" in notes


def test_segment_scores_against_a_ground_truth(handlers, tmp_path):
    image = photo(64, 48)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    # The ground truth is exactly what the fake cross-entropy head predicts, at half size.
    truth = Image.fromarray(((image.mean(axis=2) / 255 > 0.5) * 255).astype(np.uint8)).resize((32, 24))
    truth_path = tmp_path / "mask.png"
    truth.save(truth_path)
    *_, table, _ = handlers.segment(str(path), str(truth_path))
    ce_iou, iou_iou = float(table[0][2]), float(table[1][2])
    assert ce_iou > 0.8 and iou_iou < ce_iou
    assert table[0][3] in {f"{v / 10:.1f}" for v in range(11)}, "thresholded mIoU in steps of 0.1"


def test_segment_mask_errors_are_clear(handlers, tmp_path):
    path = str(save_photo(tmp_path / "photo.png"))
    wrong = tmp_path / "tall.png"
    Image.new("L", (10, 40)).save(wrong)
    with pytest.raises(gr.Error, match="Ground-truth mask: .*shape"):
        handlers.segment(path, str(wrong))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG broken")
    with pytest.raises(gr.Error, match="Ground-truth mask"):
        handlers.segment(path, str(junk))


def test_segment_with_the_real_segmenter_and_random_weights(tmp_path):
    """The app against colorseg.segment itself (not the stand-in): loading and result types."""
    models = app.load_models(make_segmentation_weights(tmp_path), device="cpu")
    assert models.segment_problem is None and models.colour is None
    overlay_ce, _, mask_ce, _, _, table, notes = app.Handlers(models, app.PictureStore(tmp_path), app.ReadableFiles(folders=[tmp_path])).segment(
        str(save_photo(tmp_path / "photo.png", 80, 60))
    )
    assert read(overlay_ce).shape == (60, 80, 3) and read(mask_ce).shape == (60, 80)
    assert len(table) == 2 and "80×60" in notes
    markdown, _, _ = app.weights_report(models)
    assert "| segmentation body | DeepLabV3Body |" in markdown and "| segmentation soft_iou |" in markdown


# ---------------------------------------------------------------- missing or damaged weights


def test_app_starts_without_any_weights(monkeypatch, tmp_path):
    install_fake_segment_module(monkeypatch)
    demo = app.build_demo(tmp_path)
    markdown = " ".join(
        str(block.value) for block in demo.blocks.values() if isinstance(block, gr.Markdown) and block.value
    )
    assert "Colourization is unavailable" in markdown and "Segmentation is unavailable" in markdown
    assert markdown.count("python train_all.py") >= 2
    handlers = app.Handlers(app.load_models(tmp_path), app.PictureStore(tmp_path / "pictures"), app.ReadableFiles(folders=[tmp_path]))
    photo_path = str(save_photo(tmp_path / "photo.png"))
    with pytest.raises(gr.Error, match="train_all.py"):
        handlers.colorize(photo_path)
    with pytest.raises(gr.Error, match="train_all.py"):
        handlers.segment(photo_path)


def test_damaged_weights_disable_only_what_they_affect(monkeypatch, tmp_path):
    install_fake_segment_module(monkeypatch)
    make_all_weights(tmp_path)
    (tmp_path / f"{COLOUR_STEMS['UNet']}.safetensors").write_bytes(b"\x00" * 100)
    models = app.load_models(tmp_path)
    assert list(models.colour.nets) == ["PoolUpsampleNet", "ConvTransposeNet"]
    assert "damaged" in models.colour.problems["UNet"] and models.segmenter is not None
    gallery, (_, after), *_ = app.Handlers(models, app.PictureStore(tmp_path), app.ReadableFiles(folders=[tmp_path])).colorize(
        str(save_photo(tmp_path / "p.png"))
    )
    assert after == gallery[2][0], "the slider falls back to the best loaded net"
    (tmp_path / f"{PALETTE_STEM}.safetensors").write_bytes(b"broken")
    models = app.load_models(tmp_path)
    assert models.colour is None and "palette" in models.colour_problem and "damaged" in models.colour_problem


def test_segmenter_that_crashes_does_not_stop_the_app(monkeypatch, tmp_path):
    import sys
    import types

    broken = types.ModuleType("colorseg.segment")

    def load_segmenter(weights_dir, device="cpu"):
        raise RuntimeError("CUDA out of memory")

    broken.load_segmenter = load_segmenter
    monkeypatch.setitem(sys.modules, "colorseg.segment", broken)
    models = app.load_models(make_colour_weights(tmp_path))
    assert models.colour.nets and models.segmenter is None
    assert "CUDA out of memory" in models.segment_problem and "train_all.py" in models.segment_problem


# ---------------------------------------------------------------- Model tab, examples, report


def test_layer_table_handler(handlers):
    rows, notes = handlers.architecture("PoolUpsampleNet", 32, 32)
    assert rows[-1][0] == "total" and len(rows) == 14
    assert "match" in notes and "DO NOT" not in notes
    rows64, _ = handlers.architecture("PoolUpsampleNet", 64, 64)
    assert rows64[-1][3] == 4 * rows[-1][3] and rows64[-1][4] == rows[-1][4]
    rows, _ = handlers.architecture("UNet", 36, 52)
    assert rows[-2][2] == "24×36×52"
    with pytest.raises(gr.Error, match="multiples of 4"):
        handlers.architecture("UNet", 30, 32)
    with pytest.raises(gr.Error, match="Choose one"):
        handlers.architecture("VGG", 32, 32)


def test_weights_report_lists_every_loaded_model(handlers, monkeypatch, tmp_path):
    (tmp_path / "reports").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "reports" / "colour_default_curves.png")
    (tmp_path / "reports" / "training_report.json").write_text('{"colour": {"results": {}}}')
    monkeypatch.setattr(handlers.models, "weights_dir", tmp_path)
    markdown, curves, report = app.weights_report(handlers.models)
    for name in ("PoolUpsampleNet", "ConvTransposeNet", "UNet", "segmentation body", "segmentation cross_entropy",
                 "segmentation soft_iou"):
        assert f"| {name} |" in markdown
    assert "val_accuracy 0.05" in markdown and "random test weights" in markdown
    assert (str(tmp_path / "reports" / "colour_default_curves.png"), "colour default curves") in curves
    assert report == {"colour": {"results": {}}}


def test_examples_include_shipped_photos_and_local_validation_data(monkeypatch, tmp_path):
    shipped = app._sample_photos()
    assert len([p for p in shipped if p.parent == app.EXAMPLES_DIR]) >= 5
    assert all(p.is_file() for p in shipped)
    cifar = tmp_path / "cifar10-images" / "test" / "horse"
    cifar.mkdir(parents=True)
    for index in range(6):
        save_photo(cifar / f"{index:04d}.jpg", 32, 32)
    horses = tmp_path / "weizmann_horse_db"
    (horses / "rgb").mkdir(parents=True)
    (horses / "figure_ground").mkdir()
    for index in range(1, 40):
        save_photo(horses / "rgb" / f"horse{index:03d}.jpg", 40, 30)
        save_photo(horses / "figure_ground" / f"horse{index:03d}.jpg", 20, 15, mode="L")
    monkeypatch.setattr(app, "DATA_DIRS", [tmp_path])
    assert [p.name for p in app._cifar_validation(limit=4)] == ["0000.jpg", "0001.jpg", "0002.jpg", "0003.jpg"]
    pairs = app._segmentation_validation(limit=4)
    from colorseg.seg_data import is_validation

    assert 0 < len(pairs) <= 4 and all(is_validation(photo.stem) and mask.stem == photo.stem for photo, mask in pairs)
    monkeypatch.setattr(app, "DATA_DIRS", [tmp_path / "absent"])
    assert app._cifar_validation(limit=4) == [] and app._segmentation_validation(limit=4) == []



def test_weights_from_a_hub_repo_named_by_the_environment(monkeypatch, tmp_path):
    import huggingface_hub

    snapshot = make_colour_weights(tmp_path / "snapshot")
    monkeypatch.delenv("COLORSEG_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("COLORSEG_HUB_REPO", "someone/colorseg-weights")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kwargs: str(snapshot))
    models = app.load_models()
    assert models.weights_dir == snapshot and len(models.colour.nets) == 3
    assert "Hub repo someone/colorseg-weights" in app.weights_report(models)[0]

    def offline(repo_id, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    models = app.load_models()
    assert models.weights_dir == app.DEFAULT_WEIGHTS_DIR
    assert "Could not fetch weights from the Hub repo someone/colorseg-weights" in models.source
    assert "(network is unreachable)" in models.source


# ---------------------------------------------------------------- no server internals


def test_warnings_name_files_relative_to_the_weights_folder(monkeypatch, tmp_path):
    install_fake_segment_module(monkeypatch)
    weights = make_all_weights(tmp_path / "deep" / "server" / "weights")
    (weights / f"{COLOUR_STEMS['UNet']}.safetensors").write_bytes(b"\x00" * 100)
    demo = app.build_demo(weights)
    shown = " ".join(
        str(block.value) for block in demo.blocks.values() if isinstance(block, gr.Markdown) and block.value
    )
    assert "colour_UNet.safetensors" in shown and "Some networks are unavailable" in shown
    assert str(tmp_path) not in shown and "/deep/server" not in shown
    (weights / f"{PALETTE_STEM}.json").unlink()
    models = app.load_models(weights)
    assert "palette.json" in models.colour_problem and str(tmp_path) not in models.colour_problem
    assert str(tmp_path) not in models.source


def test_picture_store_deletes_old_pictures(tmp_path):
    store = app.PictureStore(tmp_path / "pictures", max_age_s=60, sweep_every_s=0)
    old = store.save(np.zeros((4, 4, 3), np.uint8))
    past = time.time() - 120
    os.utime(old, (past, past))
    fresh = store.save(np.zeros((4, 4, 3), np.uint8))
    assert not os.path.exists(old) and os.path.exists(fresh)


def test_handlers_refuse_paths_outside_uploads_with_one_message(weights, store, tmp_path):
    with pytest.MonkeyPatch.context() as monkeypatch:
        install_fake_segment_module(monkeypatch)
        models = app.load_models(weights, device="cpu")
    handlers = app.Handlers(models, store)  # the app's own rule: gradio's upload folder and examples
    existing = str(save_photo(tmp_path / "server_photo.png"))
    messages = set()
    for path in (existing, str(tmp_path / "missing.png"), "/etc/passwd"):
        for call in (lambda p: handlers.colorize(p), lambda p: handlers.segment(p),
                     lambda p: handlers.segment(str(app.EXAMPLES_DIR / "coffee_cup.jpg"), p)):
            with pytest.raises(gr.Error) as caught:
                call(path)
            messages.add(caught.value.message)
    assert messages == {app.REFUSED_PATH}


def test_training_report_shows_no_server_paths(handlers):
    _, _, report = app.weights_report(handlers.models)
    if report is None:
        pytest.skip("no training report in reports/")
    text = str(report)
    assert "/work/" not in text and str(app.REPO) not in text
