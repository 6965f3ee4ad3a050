"""The Segment tab's handler: overlays, masks, scores against a ground truth, clear errors."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from app_fakes import fake_context
from app_support import make_segmentation_weights, photo, read_picture, save_photo
from PIL import Image

from colorseg.app.demo import build_demo
from colorseg.app.models import load_models
from colorseg.app.report import weights_report
from colorseg.app.segment_handlers import SegmentHandlers
from colorseg.app.store import Context, PictureStore
from colorseg.app.uploads import ReadableFiles


def rows(scores: dict) -> list[list[str]]:
    """The score table's rows, as the page shows them."""
    return scores["data"]


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    context = fake_context(
        tmp_path_factory.mktemp("weights"), tmp_path_factory.mktemp("pictures"), tmp_path_factory.getbasetemp()
    )
    return SegmentHandlers(context)


def test_segment_without_ground_truth(handlers, tmp_path):
    overlay_ce, overlay_iou, mask_ce, mask_iou, disagreement, scores, notes = handlers.segment(
        str(save_photo(tmp_path / "photo.png"))
    )
    table = rows(scores)
    for image in (overlay_ce, overlay_iou, disagreement):
        assert read_picture(image).shape == (48, 64, 3) and image.endswith(".jpg")
    mask_ce, mask_iou = read_picture(mask_ce), read_picture(mask_iou)
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
    *_, scores, _ = handlers.segment(str(path), str(truth_path))
    table = rows(scores)
    assert scores["headers"][2] == "IoU", "a mask of the user's own is ground truth"
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
    """The app against colorseg.segmentation.inference itself (not the stand-in): loading and result types."""
    models = load_models(make_segmentation_weights(tmp_path), device="cpu")
    assert models.segment_problem is None and models.colour is None
    context = Context(models, PictureStore(tmp_path / "pictures"), ReadableFiles(folders=[tmp_path]))
    overlay_ce, _, mask_ce, _, _, scores, notes = SegmentHandlers(context).segment(
        str(save_photo(tmp_path / "photo.png", 80, 60))
    )
    assert read_picture(overlay_ce).shape == (60, 80, 3) and read_picture(mask_ce).shape == (60, 80)
    assert len(rows(scores)) == 2 and "80×60" in notes
    markdown, _, _ = weights_report(models)
    assert "| segmentation body | DeepLabV3Body |" in markdown
    assert "| segmentation seg_head_objects_soft_iou |" in markdown


# ---------------------------------------------------------------- what to find (issue 11)


def test_each_task_uses_its_own_heads_from_one_body_pass(handlers, tmp_path):
    path = str(save_photo(tmp_path / "photo.png"))
    segmenter = handlers.context.models.segmenter
    object_pixels = {}
    for task in ("objects", "flowers", "horses"):
        passes = segmenter.body_passes
        *_, scores, notes = handlers.segment(path, None, task)
        table = rows(scores)
        assert segmenter.body_passes == passes + 1, "one body pass serves both heads"
        object_pixels[task] = table[0][1]
        assert "one body pass, two heads" in notes
    assert len(set(object_pixels.values())) == 3, "each task has its own heads"
    assert rows(handlers.segment(path)[5])[0][1] == object_pixels["objects"], "default: any object"
    assert "looking for **Horses**" in handlers.segment(path, None, "horses")[6]


def test_a_task_without_heads_is_a_clear_error(tmp_path):
    (tmp_path / "weights").mkdir()
    make_all_weights_with_tasks(tmp_path / "weights", "objects horses")
    context = fake_context(tmp_path / "weights", tmp_path / "pictures", tmp_path)
    with pytest.raises(gr.Error, match="no heads for 'flowers'.*'horses' \\(Horses\\)"):
        SegmentHandlers(context).segment(str(save_photo(tmp_path / "photo.png")), None, "flowers")


def test_the_radio_offers_only_the_loaded_tasks(tmp_path):
    from app_fakes import FakeSegmenter

    from colorseg.app.segment_handlers import task_choices

    assert task_choices(FakeSegmenter(("horses", "objects"))) == [("Any object", "objects"), ("Horses", "horses")]
    assert [task for _, task in task_choices(None)] == ["objects", "flowers", "horses"]
    (tmp_path / "weights").mkdir()
    make_all_weights_with_tasks(tmp_path / "weights", "flowers horses")
    demo = build_demo(models=fake_context(tmp_path / "weights", tmp_path / "pictures").models)
    radio = next(b for b in demo.blocks.values() if isinstance(b, gr.Radio) and b.label == "What to find")
    assert [value for _, value in radio.choices] == ["flowers", "horses"] and radio.value == "flowers"


def make_all_weights_with_tasks(directory, tasks: str):
    from app_support import SEGMENTER_MARKER, make_all_weights

    make_all_weights(directory)
    (directory / SEGMENTER_MARKER).write_text(tasks)


# ------------------------------------------------------------ lessons and clarity (issue 24)


def test_a_shipped_u2netp_mask_is_scored_as_agreement_not_ground_truth(handlers, tmp_path, monkeypatch):
    from colorseg.app.examples import REFERENCE_MASKS, reference_mask, segment_examples
    from colorseg.app.segment_handlers import REFERENCE_HEADERS, is_reference

    rows_with_masks = [row for row in segment_examples() if row[1]]
    assert len(rows_with_masks) >= 9 and all(Path(mask).parent == REFERENCE_MASKS for _, mask in rows_with_masks[:9])
    photo_path, mask_path = rows_with_masks[0]
    assert reference_mask(Path(photo_path)) == Path(mask_path) and is_reference(mask_path)
    copy = tmp_path / "copy.png"  # as gradio hands a clicked example over: a copy of the file
    copy.write_bytes(Path(mask_path).read_bytes())
    assert is_reference(str(copy)) and not is_reference(str(save_photo(tmp_path / "other.png")))

    image = photo(64, 48)
    Image.fromarray(image).save(tmp_path / "photo.png")
    Image.open(mask_path).convert("L").resize((64, 48)).save(tmp_path / "reference.png")
    handlers.context.readable.add_examples([tmp_path / "reference.png"])
    import colorseg.app.segment_handlers as module

    module.REFERENCE_DIGESTS.add(module._digest(tmp_path / "reference.png"))
    *_, scores, notes = handlers.segment(str(tmp_path / "photo.png"), str(tmp_path / "reference.png"))
    assert scores["headers"] == REFERENCE_HEADERS and "agrees with U²-Net-p" in notes
    plots, curve, calibration, errors_ce, *_ = handlers.extras(
        str(tmp_path / "photo.png"), str(tmp_path / "reference.png")
    )
    assert plots.visible and "U²-Net-p's mask" in errors_ce.label
    assert read_picture(curve).ndim == 3 and read_picture(calibration).ndim == 3


def test_without_a_mask_the_plots_stay_hidden_and_cutouts_are_named(handlers, tmp_path):
    path = str(save_photo(tmp_path / "cow.png"))
    handlers.segment(path)
    plots, curve, calibration, errors_ce, errors_iou, cutout_ce, cutout_iou = handlers.extras(path)
    assert plots.visible is False and curve is None and errors_ce.visible is False
    assert Path(cutout_ce).name == "cow_objects_ce_cutout.png" and Path(cutout_iou).name.startswith("cow_objects_soft")


def test_results_download_under_the_photos_name(handlers, tmp_path):
    path = str(save_photo(tmp_path / "Kitten on a rug!.png"))
    overlay_ce, overlay_iou, mask_ce, mask_iou, disagreement, *_ = handlers.segment(path, None, "horses")
    names = [Path(p).name for p in (overlay_ce, overlay_iou, mask_ce, mask_iou, disagreement)]
    assert names == [
        "Kitten_on_a_rug_horses_ce_overlay.jpg",
        "Kitten_on_a_rug_horses_soft_iou_overlay.jpg",
        "Kitten_on_a_rug_horses_ce_mask.png",
        "Kitten_on_a_rug_horses_soft_iou_mask.png",
        "Kitten_on_a_rug_horses_disagreement.jpg",
    ]


def test_a_colour_photo_given_as_the_mask_is_refused(handlers, tmp_path):
    path = str(save_photo(tmp_path / "photo.png"))
    colourful = tmp_path / "colourful.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(colourful)
    with pytest.raises(gr.Error, match="in colour, so it cannot be a mask"):
        handlers.segment(path, str(colourful))


def test_changing_the_task_renders_again_and_does_nothing_without_a_photo(handlers, tmp_path):
    assert handlers.rerender(None, None, "horses") == (gr.skip(),) * 7
    path = str(save_photo(tmp_path / "photo.png"))
    assert "looking for **Horses**" in handlers.rerender(path, None, "horses")[6]


def test_each_colour_means_one_thing():
    from colorseg.segmentation.explain import ERROR_COLOURS, HEAD_COLOURS

    colours = [*HEAD_COLOURS.values(), *ERROR_COLOURS.values()]
    assert len(set(colours)) == len(colours) == 5
