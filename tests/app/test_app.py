"""The assembled app: start-up with missing or damaged weights, injected models, examples,
the Model tab, the weights report, the picture store and the upload path guard."""

from __future__ import annotations

import os
import time

import gradio as gr
import numpy as np
import pytest
from app_fakes import fake_context, fake_models
from app_support import load_fake_segmenter, make_all_weights, make_colour_weights, save_photo
from PIL import Image

import app
from colorseg.app import examples
from colorseg.app.colour_tab import ColourHandlers
from colorseg.app.demo import build_demo
from colorseg.app.model_tab import ModelHandlers
from colorseg.app.models import load_models
from colorseg.app.report import format_metrics, weights_report
from colorseg.app.segment_handlers import SegmentHandlers
from colorseg.app.settings import REPO
from colorseg.app.store import Context, PictureStore
from colorseg.app.uploads import READABLE, REFUSED_PATH, ReadableFiles
from colorseg.colour.models import COLOUR_STEMS
from colorseg.colour.palette import PALETTE_STEM
from colorseg.paths import DEFAULT_WEIGHTS_DIR


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    return fake_context(
        tmp_path_factory.mktemp("weights"), tmp_path_factory.mktemp("pictures"), tmp_path_factory.getbasetemp()
    )


def markdown_of(demo: gr.Blocks) -> str:
    return " ".join(
        str(block.value) for block in demo.blocks.values() if isinstance(block, gr.Markdown) and block.value
    )


def test_demo_is_built_at_import_and_not_launched():
    assert isinstance(app.demo, gr.Blocks)
    assert not getattr(app.demo, "is_running", False)
    names = {dependency.get("api_name") for dependency in app.demo.config["dependencies"]}
    assert {"colorize", "segment", "layer_table"} <= names


def test_app_py_only_assembles():
    source = (REPO / "app.py").read_text()
    assert len(source.splitlines()) <= 80 and "demo.launch" in source.split('if __name__ == "__main__":')[1]


def test_build_demo_takes_models_or_a_loader(context, tmp_path):
    calls = []

    def loader(weights_dir, device):
        calls.append((weights_dir, device))
        return context.models

    build_demo(tmp_path, "cpu", loader=loader)
    assert calls == [(tmp_path, "cpu")]
    build_demo(models=context.models)
    assert len(calls) == 1, "given models are used as they are"


# ---------------------------------------------------------------- missing or damaged weights


def test_app_starts_without_any_weights(tmp_path):
    models = fake_models(tmp_path)
    demo = build_demo(models=models)
    markdown = markdown_of(demo)
    assert "Colourization is unavailable" in markdown and "Segmentation is unavailable" in markdown
    assert markdown.count("python train_all.py") >= 2
    context = Context(models, PictureStore(tmp_path / "pictures"), ReadableFiles(folders=[tmp_path]))
    photo_path = str(save_photo(tmp_path / "photo.png"))
    with pytest.raises(gr.Error, match="train_all.py"):
        ColourHandlers(context).colorize(photo_path)
    with pytest.raises(gr.Error, match="train_all.py"):
        SegmentHandlers(context).segment(photo_path)


def test_damaged_weights_disable_only_what_they_affect(tmp_path):
    make_all_weights(tmp_path)
    (tmp_path / f"{COLOUR_STEMS['UNet']}.safetensors").write_bytes(b"\x00" * 100)
    models = fake_models(tmp_path)
    assert list(models.colour.nets) == ["PoolUpsampleNet", "ConvTransposeNet"]
    assert "damaged" in models.colour.problems["UNet"] and models.segmenter is not None
    context = Context(models, PictureStore(tmp_path / "pictures"), ReadableFiles(folders=[tmp_path]))
    gallery, (_, after), *_ = ColourHandlers(context).colorize(str(save_photo(tmp_path / "p.png")))
    assert after == gallery[2][0], "the slider falls back to the best loaded net"
    (tmp_path / f"{PALETTE_STEM}.safetensors").write_bytes(b"broken")
    models = fake_models(tmp_path)
    assert models.colour is None and "palette" in models.colour_problem and "damaged" in models.colour_problem


def _edit_description(path, **values):
    import json

    description = json.loads(path.read_text())
    for key, value in values.items():
        target = description["constructor"] if key in ("kernel", "num_filters") else description
        target[key] = value
    path.write_text(json.dumps(description))


def test_hand_edited_weight_descriptions_make_the_tab_say_the_weights_are_unusable(tmp_path):
    make_all_weights(tmp_path)
    _edit_description(tmp_path / f"{COLOUR_STEMS['UNet']}.json", kernel=-1)
    models = fake_models(tmp_path)
    assert list(models.colour.nets) == ["PoolUpsampleNet", "ConvTransposeNet"]
    markdown = markdown_of(build_demo(models=models))
    assert "Some networks are unavailable" in markdown and "kernel=-1 is not allowed" in markdown
    for name in ("PoolUpsampleNet", "ConvTransposeNet"):
        _edit_description(tmp_path / f"{COLOUR_STEMS[name]}.json", num_filters=100_000)
    markdown = markdown_of(build_demo(models=fake_models(tmp_path)))
    assert "Colourization is unavailable" in markdown and "num_filters=100000 is not allowed" in markdown


def test_a_hand_edited_segmentation_working_size_makes_the_tab_say_so(tmp_path):
    from app_support import make_segmentation_weights

    from colorseg.segmentation.inference import SEG_BODY_STEM

    make_segmentation_weights(make_colour_weights(tmp_path), tasks=("objects",))
    _edit_description(tmp_path / f"{SEG_BODY_STEM}.json", working_size=20000)
    models = load_models(tmp_path, "cpu")  # the real segmenter loader
    assert models.segmenter is None and "working_size=20000 is not allowed" in models.segment_problem
    assert "Segmentation is unavailable" in markdown_of(build_demo(models=models))


def test_segmenter_that_crashes_does_not_stop_the_app(tmp_path):
    def load_segmenter(weights_dir, device="cpu"):
        raise RuntimeError("CUDA out of memory")

    models = load_models(make_colour_weights(tmp_path), load_segmenter=load_segmenter)
    assert models.colour.nets and models.segmenter is None
    assert "CUDA out of memory" in models.segment_problem and "train_all.py" in models.segment_problem


def test_weights_from_a_hub_repo_named_by_the_environment(monkeypatch, tmp_path):
    import huggingface_hub

    snapshot = make_colour_weights(tmp_path / "snapshot")
    monkeypatch.delenv("COLORSEG_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("COLORSEG_HUB_REPO", "someone/colorseg-weights")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kwargs: str(snapshot))
    models = load_models(load_segmenter=load_fake_segmenter)
    assert models.weights_dir == snapshot and len(models.colour.nets) == 3
    assert "Hub repo someone/colorseg-weights" in weights_report(models)[0]

    def offline(repo_id, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    models = load_models(load_segmenter=load_fake_segmenter)
    assert models.weights_dir == DEFAULT_WEIGHTS_DIR
    assert "Could not fetch weights from the Hub repo someone/colorseg-weights" in models.source
    assert "(network is unreachable)" in models.source


# ---------------------------------------------------------------- Model tab, examples, report


def test_layer_table_handler(context):
    handlers = ModelHandlers(context)
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


def test_metrics_cell_shows_flat_metrics_and_the_iou_of_nested_ones():
    assert format_metrics({"val_loss": 1.23456, "epochs": 25, "history": [1, 2]}) == "val_loss 1.235, epochs 25"
    head = {"val": {"davis": {"miou_thresholded": 0.03, "iou": 0.33, "pixel_accuracy": 0.95}, "flowers": {"iou": 0.9}}}
    assert format_metrics(head) == "val davis iou 0.33, val flowers iou 0.9"


def test_weights_report_lists_every_loaded_model(context, monkeypatch, tmp_path):
    (tmp_path / "reports").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "reports" / "colour_default_curves.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "reports" / "replay_colour_UNet_prediction.png")
    (tmp_path / "reports" / "training_report.json").write_text('{"colour": {"results": {}}}')
    monkeypatch.setattr(context.models, "weights_dir", tmp_path)
    markdown, curves, report = weights_report(context.models)
    for name in (
        "PoolUpsampleNet",
        "ConvTransposeNet",
        "UNet",
        "segmentation body",
        "segmentation cross_entropy",
        "segmentation soft_iou",
    ):
        assert f"| {name} |" in markdown
    assert "val_accuracy 0.05" in markdown and "random test weights" in markdown
    assert (str(tmp_path / "reports" / "colour_default_curves.png"), "colour default curves") in curves
    assert not any("replay" in caption for _, caption in curves), "replay strips are not curves"
    assert report == {"colour": {"results": {}}}


def test_the_model_tab_shows_each_training_plot_whole(context, monkeypatch, tmp_path):
    """A gallery's square tiles cropped or shrank the wide plots: each is its own picture, no fixed height."""
    (tmp_path / "reports").mkdir()
    for name in ("colour_default_curves", "seg_body_curves"):
        Image.new("RGB", (1300, 400)).save(tmp_path / "reports" / f"{name}.png")
    monkeypatch.setattr(context.models, "weights_dir", tmp_path)
    demo = build_demo(models=context.models)
    plots = [b for b in demo.blocks.values() if isinstance(b, gr.Image) and "model-curve" in (b.elem_classes or [])]
    assert {"colour default curves", "seg body curves"} <= {plot.label for plot in plots}
    assert all(plot.height is None and plot.width is None for plot in plots)
    assert not any(isinstance(b, gr.Gallery) and b.label == "Training curves" for b in demo.blocks.values())
    assert "How to read them" in markdown_of(demo)


def test_examples_include_shipped_photos_and_local_validation_data(monkeypatch, tmp_path):
    shipped = examples.sample_photos()
    assert len([p for p in shipped if p.parent == examples.EXAMPLES_DIR]) >= 5
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
    monkeypatch.setattr(examples, "DATA_DIRS", [tmp_path])
    assert [p.name for p in examples.cifar_validation(limit=4)] == ["0000.jpg", "0001.jpg", "0002.jpg", "0003.jpg"]
    pairs = examples.segmentation_validation(limit=4)
    from colorseg.segmentation.data import is_validation

    assert 0 < len(pairs) <= 4 and all(is_validation(photo.stem) and mask.stem == photo.stem for photo, mask in pairs)
    rows = examples.segment_examples()
    assert rows[0][1] is not None and rows[len(pairs)][0].endswith(".webp"), "masked horses, then farm animals"
    monkeypatch.setattr(examples, "DATA_DIRS", [tmp_path / "absent"])
    assert examples.cifar_validation(limit=4) == [] and examples.segmentation_validation(limit=4) == []


# ---------------------------------------------------------------- no server internals


def test_warnings_name_files_relative_to_the_weights_folder(tmp_path):
    weights = make_all_weights(tmp_path / "deep" / "server" / "weights")
    (weights / f"{COLOUR_STEMS['UNet']}.safetensors").write_bytes(b"\x00" * 100)
    shown = markdown_of(build_demo(models=fake_models(weights)))
    assert "colour_UNet.safetensors" in shown and "Some networks are unavailable" in shown
    assert str(tmp_path) not in shown and "/deep/server" not in shown
    (weights / f"{PALETTE_STEM}.json").unlink()
    models = fake_models(weights)
    assert "palette.json" in models.colour_problem and str(tmp_path) not in models.colour_problem
    assert str(tmp_path) not in models.source


def test_picture_store_deletes_old_pictures(tmp_path):
    store = PictureStore(tmp_path / "pictures", max_age_s=60, sweep_every_s=0)
    old = store.save(np.zeros((4, 4, 3), np.uint8))
    old_named = store.save(np.zeros((4, 4, 4), np.uint8), name="cutout")
    assert old_named.endswith("/cutout.png")
    past = time.time() - 120
    for path in (old, old_named, os.path.dirname(old_named)):
        os.utime(path, (past, past))
    fresh = store.save(np.zeros((4, 4, 3), np.uint8))
    assert not os.path.exists(old) and os.path.exists(fresh)
    assert not os.path.exists(os.path.dirname(old_named)), "a named picture goes with its folder"


def test_picture_store_keeps_to_its_byte_cap_oldest_first_never_the_last_minute(tmp_path):
    store = PictureStore(tmp_path / "pictures", sweep_every_s=3600, max_bytes=2500, min_age_s=60)
    now = time.time()
    written = []
    for age in (600, 500, 400, 30, 10):  # seconds old; each file 1000 bytes
        path = store.directory / f"{age}.jpg" if age != 400 else store.directory / "x" / "cutout.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\0" * 1000)
        os.utime(path, (now - age, now - age))
        written.append(path)
    os.utime(written[2].parent, (now - 400, now - 400))
    assert store.sweep(now) == 3, "5000 bytes against 2500: the three oldest go"
    assert [p.exists() for p in written] == [False, False, False, True, True]
    assert not written[2].parent.exists(), "a named picture's folder goes with it"
    # Younger than a minute: kept even above the cap (a browser may still be downloading them).
    store.max_bytes = 0
    assert store.sweep(now) == 0 and written[3].exists() and written[4].exists()
    assert store.sweep(now + 61) == 2


def test_picture_store_byte_cap_is_set_by_the_environment(monkeypatch, tmp_path):
    import importlib

    from colorseg.app import settings

    monkeypatch.setenv("COLORSEG_PICTURE_STORE_BYTES", "12345")
    try:
        importlib.reload(settings)
        assert PictureStore(tmp_path / "a").max_bytes == 12345
    finally:
        monkeypatch.delenv("COLORSEG_PICTURE_STORE_BYTES")
        importlib.reload(settings)
    assert PictureStore(tmp_path / "b").max_bytes == 2 * 10**9


def test_the_app_keeps_its_files_in_its_own_temp_folder(context, tmp_path, monkeypatch):
    """Not gradio's <temp>/gradio, shared by every gradio app on the machine (this app's file route
    and readable files would cover theirs); a GRADIO_TEMP_DIR the user set is kept."""
    import tempfile

    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    build_demo(models=context.models)
    assert os.environ["GRADIO_TEMP_DIR"] == str(tmp_path / "colorseg")
    assert gr.utils.get_upload_folder() == str(tmp_path / "colorseg") and (tmp_path / "colorseg").is_dir()
    assert (tmp_path / "colorseg").stat().st_mode & 0o077 == 0, "readable by this user only"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "chosen"))
    build_demo(models=context.models)
    assert gr.utils.get_upload_folder() == str(tmp_path / "chosen")


def test_handlers_refuse_paths_outside_uploads_with_one_message(context, tmp_path):
    # The app's own rule: gradio's upload folder and the examples its tabs list.
    strict = Context(context.models, context.store, READABLE)
    build_demo(models=context.models)  # lists the examples
    colour, segment = ColourHandlers(strict), SegmentHandlers(strict)
    existing = str(save_photo(tmp_path / "server_photo.png"))
    messages = set()
    for path in (existing, str(tmp_path / "missing.png"), "/etc/passwd"):
        for call in (
            lambda p: colour.colorize(p),
            lambda p: segment.segment(p),
            lambda p: segment.segment(str(examples.EXAMPLES_DIR / "coffee_cup.jpg"), p),
        ):
            with pytest.raises(gr.Error) as caught:
                call(path)
            messages.add(caught.value.message)
    assert messages == {REFUSED_PATH}


def test_training_report_shows_no_server_paths(context):
    _, _, report = weights_report(context.models)
    if report is None:
        pytest.skip("no training report in reports/")
    text = str(report)
    assert "/work/" not in text and str(REPO) not in text
