"""Issue 12's panels: the layer explorer and checkerboard probe, the pixel inspector, the
segmentation extras (threshold curves, TP/FP/FN, cut-outs) and the training replay."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from app_fakes import fake_context
from app_support import photo, read_picture, save_photo
from PIL import Image

from colorseg.app.inside_tab import InsideHandlers
from colorseg.app.inspector import InspectorHandlers
from colorseg.app.replay_tab import NO_REPLAYS, ReplayHandlers, replay_label, replay_stems
from colorseg.app.segment_handlers import SegmentHandlers
from colorseg.replay import ReplayRecorder


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    return fake_context(
        tmp_path_factory.mktemp("weights"), tmp_path_factory.mktemp("pictures"), tmp_path_factory.getbasetemp()
    )


def test_layer_explorer_shows_every_layer_with_counts_and_skips(context, tmp_path):
    gallery, rows, notes = InsideHandlers(context).explore(str(save_photo(tmp_path / "p.png", 96, 64)), "UNet", 64)
    assert len(gallery) == len(rows) == 9 and "64×44 px" in notes
    captions = [caption for _, caption in gallery]
    assert "← skip from down1.1" in captions[6] and "← skip from input" in captions[8]
    assert sum("skip" in caption for caption in captions) == 2
    assert all("outputs" in c and "weights" in c and "connections" in c for c in captions)
    assert rows[6][-1] == "down1.1, up1.1 (skip)" and read_picture(gallery[0][0]).ndim == 3
    _, plain_rows, _ = InsideHandlers(context).explore(str(save_photo(tmp_path / "q.png")), "PoolUpsampleNet", 32)
    assert not any("skip" in row[-1] for row in plain_rows)
    assert InsideHandlers(context).explore_if_photo(None, "UNet", 64)[0] is not None  # gr.skip(), no error


def test_checkerboard_probe_for_every_net(context):
    handlers = InsideHandlers(context)
    *galleries, notes = handlers.probe()
    assert handlers.probe()[0] == galleries[0], "once per app, not per page load"
    assert len(galleries) == 3 and all(len(gallery) == 4 for gallery in galleries)
    assert read_picture(galleries[2][0][0]).shape == (256, 256, 3)
    # Two a row: flat grey first, then the ramp.
    assert [caption.split(":")[0] for _, caption in galleries[2]] == ["flat grey", "flat grey", "ramp", "ramp"]
    assert galleries[2][0][0].endswith("probe_UNet_flat_max_logit.png")
    assert all(f"**{name}**" in notes for name in ("PoolUpsampleNet", "ConvTransposeNet", "UNet")) and "%" in notes


def test_the_probe_galleries_show_every_picture_whole(context):
    from colorseg.app.demo import build_demo

    demo = build_demo(models=context.models)
    galleries = {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.Gallery)}
    for elem_id in ("probe-upsampled", "probe-transposed", "probe-unet"):
        assert galleries[elem_id].height == "auto" and galleries[elem_id].columns == 2, elem_id


def test_pixel_inspector_follows_the_click_and_the_decoding(context, tmp_path):
    handlers = InspectorHandlers(context)
    path = str(save_photo(tmp_path / "p.png", 64, 48))
    summary, charts = handlers.inspect(path, None, 32, "annealed mean", 0.38, 47, 63)
    assert read_picture(charts).shape[0] == 30 + 3 * 200, "a chart per net, one above the other"
    assert all(f"<td>{name}</td>" in summary for name in ("PoolUpsampleNet", "ConvTransposeNet", "UNet"))
    assert "Pixel (63, 47)" in summary and "(31, 23)" in summary and "T = 0.38" in summary
    hotter, _ = handlers.inspect(path, ["UNet"], 32, "argmax", 1.0, 47, 63)
    assert "T = 1.00" in hotter and hotter.count("<tr>") == 2 and "<b><span" in hotter
    event = gr.SelectData(None, {"index": [10, 20], "value": None})
    _, charts, point, marked = handlers.clicked(path, None, 32, "argmax", 1.0, path, event)
    assert point == (20, 10) and read_picture(marked).shape == (48, 64, 3) and marked != path
    assert marked.endswith("/p_pixel_10_20.jpg") and charts.endswith("/p_colours_10_20.png"), "download names"


def test_the_inspector_follows_every_render(context, tmp_path):
    """After the results are drawn again (another net, decoding, size, temperature), the pixel
    already inspected is inspected again, ringed on the new result; before any click, nothing."""
    handlers = InspectorHandlers(context)
    path = str(save_photo(tmp_path / "p.png", 64, 48))
    result = str(save_photo(tmp_path / "result.png", 64, 48))
    assert handlers.after_render(path, None, 32, "argmax", 1.0, (path, result), None) == (result, result, "", None)
    assert handlers.after_render(path, [], 32, "argmax", 1.0, None, (20, 10)) == (None, None, "", None)
    picture, unmarked, summary, charts = handlers.after_render(
        path, ["UNet"], 32, "argmax", 1.0, (path, result), (20, 10)
    )
    assert unmarked == result and picture != result and read_picture(picture).shape == (48, 64, 3)
    assert "Pixel (10, 20)" in summary and "<b><span" in summary and summary.count("<tr>") == 2
    assert read_picture(charts).shape[0] == 30 + 200


def test_segmentation_extras_with_and_without_a_ground_truth(context, tmp_path):
    handlers = SegmentHandlers(context)
    image = photo(64, 48)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    passes = context.models.segmenter.body_passes
    handlers.segment(str(path), None, "horses")
    plots, curve, _, errors_ce, _, cutout_ce, cutout_iou = handlers.extras(str(path), None, "horses")
    assert context.models.segmenter.body_passes == passes + 1, "the extras reuse /segment's body pass"
    assert plots.visible is False and curve is None and errors_ce.visible is False
    cutout = read_picture(cutout_ce)
    assert cutout.shape == (48, 64, 4) and set(np.unique(cutout[..., 3])) <= {0, 255} and cutout_ce.endswith(".png")
    assert "photo_horses_ce_cutout" in cutout_ce and (read_picture(cutout_iou)[..., 3] >= cutout[..., 3]).all()
    truth = tmp_path / "mask.png"
    Image.fromarray(((image.mean(axis=2) > 127) * 255).astype(np.uint8)).save(truth)
    plots, curve, calibration, errors_ce, *_ = handlers.extras(str(path), str(truth), "objects")
    assert plots.visible and read_picture(curve).ndim == 3 and read_picture(calibration).ndim == 3
    assert read_picture(errors_ce.value["path"]).shape == (48, 64, 3)


def _replay(folder, stem="replay_colour_UNet", epochs=(1, 2, 3)):
    recorder = ReplayRecorder("colour", ["horse a", "horse b"])
    for epoch in epochs:
        recorder.record(epoch, "prediction", np.full((2, 8, 8, 3), epoch * 40, np.uint8))
        recorder.record_losses(epoch, "train", {"loss": 3.0 / epoch})
    return recorder.save(folder, stem)


def test_replay_lists_only_replay_indexes_and_plays_back(context, tmp_path):
    (tmp_path / "training_report.json").write_text('{"colour": {}}')
    _replay(tmp_path)
    _replay(tmp_path, "replay_seg_horses", epochs=(1, 5))
    stems = replay_stems([tmp_path])
    assert list(stems) == ["replay_colour_UNet", "replay_seg_horses"]
    assert (
        replay_label("replay_seg_horses") == "segmentation: horses"
        and replay_label("replay_colour_UNet") == "colour: UNet"
    )
    handlers = ReplayHandlers(context, stems)
    _, slider, frame, caption = handlers.choose("replay_colour_UNet")
    assert (slider.minimum, slider.maximum, slider.value) == (1, 3, 3) and "**Epoch 3** of 3" in caption
    assert read_picture(frame).shape == (160, 320, 3) and (read_picture(frame) == 120).all()
    frame, caption = handlers.show("replay_seg_horses", "prediction", 4)
    assert "**Epoch 1** of 5" in caption and "loss 3" in caption
    assert handlers.step("replay_seg_horses", "prediction", 1)[0] == 5
    assert handlers.start("replay_colour_UNet", "prediction", 3)[0] == 1, "play from the start when at the end"


def test_a_segmentation_replay_opens_on_its_predictions(context, tmp_path, monkeypatch):
    """As train_all.py records them: photo and truth once (epoch 0), the heads every epoch.
    A slider over the photo's one epoch made Gradio refuse to build the app."""
    from colorseg.app import replay_tab
    from colorseg.app.demo import build_demo

    recorder = ReplayRecorder("segmentation", ["a", "b"])
    recorder.record(0, "photo", np.full((2, 8, 8, 3), 9, np.uint8))
    for epoch in (1, 2, 3):
        recorder.record(epoch, "cross_entropy", np.arange(128).reshape(2, 8, 8) % epoch == 0)
    recorder.save(tmp_path, "replay_seg_flowers")
    handlers = ReplayHandlers(context, replay_stems([tmp_path]))
    keys, slider, frame, caption = handlers.choose("replay_seg_flowers")
    assert keys.value == "cross_entropy" and (slider.minimum, slider.maximum, slider.value) == (0, 3, 3)
    assert "**Epoch 3** of 3" in caption
    assert "**Epoch 0** of 0" in handlers.show("replay_seg_flowers", "photo", 3)[1]
    assert replay_tab.epoch_slider([0]).maximum == 1
    recorder = ReplayRecorder("segmentation", ["a"])
    recorder.record(0, "photo", np.zeros((1, 8, 8, 3), np.uint8))
    recorder.save(tmp_path, "replay_seg_birds")  # one epoch only, and the first replay listed
    monkeypatch.setattr(replay_tab, "report_dirs", lambda weights_dir: [tmp_path])
    build_demo(models=context.models)  # raised "Slider minimum must be less than maximum"


def test_no_replays_says_how_to_make_them(context, monkeypatch, tmp_path):
    from colorseg.app import replay_tab
    from colorseg.app.demo import build_demo

    monkeypatch.setattr(replay_tab, "report_dirs", lambda weights_dir: [tmp_path])
    demo = build_demo(models=context.models)
    shown = " ".join(str(b.value) for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.value)
    assert NO_REPLAYS in shown and "python train_all.py" in NO_REPLAYS


def test_a_damaged_replay_is_reported_without_the_server_path(context, tmp_path):
    folder = tmp_path / "deep" / "server" / "reports"
    folder.mkdir(parents=True)
    _replay(folder)
    (folder / "replay_colour_UNet_prediction.png").write_bytes(b"broken")
    handlers = ReplayHandlers(context, replay_stems([folder]))
    with pytest.raises(gr.Error) as caught:
        handlers.choose("replay_colour_UNet")
    assert "cannot be read" in caught.value.message and str(tmp_path) not in caught.value.message
