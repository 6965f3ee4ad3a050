"""colorseg.segmentation.explain: IoU by threshold (ignored pixels excluded), error colours, cutouts, PNGs."""

from __future__ import annotations

import stat

import numpy as np
import pytest
import torch
from PIL import Image

from colorseg.segmentation import explain as s
from colorseg.segmentation.losses import IGNORE, SMOOTH, iou_per_image

PROB = np.array(
    [[0.9, 0.8, 0.3, 0.1], [0.7, 0.6, 0.2, 0.1], [0.4, 0.55, 0.1, 0.0], [0.2, 0.1, 0.0, 0.95]],
    dtype=np.float32,
)
# Object: the top-left 2x2 block and (2, 0). The confident pixel (3, 3) is unlabelled: were
# it counted, it would be a false positive at every threshold below 0.95.
TARGET = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, IGNORE]], dtype=np.uint8)


def test_threshold_curve_by_hand():
    thresholds, ious = s.iou_threshold_curve(PROB, TARGET, [0.05, 0.35, 0.5, 0.65, 0.95])
    # (intersection, union) over the 15 labelled pixels, counted by hand:
    # > 0.05: 13 pixels predicted, all 5 object pixels among them;
    # > 0.35: the 5 object pixels and (2, 1); > 0.5: 4 of them and (2, 1), missing (2, 0);
    # > 0.65: 3 object pixels; > 0.95: nothing (strictly greater, as segment.predict).
    expected = [(5, 13), (5, 6), (4, 6), (3, 5), (0, 5)]
    assert thresholds.tolist() == [0.05, 0.35, 0.5, 0.65, 0.95]
    assert ious == pytest.approx([(i + SMOOTH) / (u + SMOOTH) for i, u in expected], rel=1e-12)


def test_threshold_curve_defaults_and_agreement_with_the_metric():
    thresholds, ious = s.iou_threshold_curve(PROB, TARGET)
    assert thresholds.tolist() == [round(0.05 * k, 2) for k in range(1, 20)]
    at_half = iou_per_image(torch.from_numpy(PROB > 0.5)[None], torch.from_numpy(TARGET)[None]).item()
    assert ious[thresholds.tolist().index(0.5)] == at_half
    # A bool target has no ignored pixels: (3, 3) becomes a false positive.
    _, bool_ious = s.iou_threshold_curve(PROB, TARGET == 1, [0.5])
    assert bool_ious[0] == pytest.approx((4 + SMOOTH) / (7 + SMOOTH))
    _, empty = s.iou_threshold_curve(np.zeros((3, 3)), np.zeros((3, 3), bool), [0.5])
    assert empty[0] == 1.0, "nothing predicted of nothing is a perfect score, as in the assignment"
    with pytest.raises(ValueError):
        s.iou_threshold_curve(PROB, TARGET[:3])


def test_curve_chart_is_a_picture():
    curves = {"cross_entropy": s.iou_threshold_curve(PROB, TARGET), "soft_iou": s.iou_threshold_curve(PROB**2, TARGET)}
    chart = s.curve_chart(curves)
    assert chart.dtype == np.uint8 and chart.ndim == 3 and chart.shape[2] == 3


def test_error_overlay_colours():
    rgb = np.full((4, 4, 3), 100, np.uint8)
    pred = PROB > 0.5  # TP: top-left 2x2; FP: (2, 1); FN: (2, 0); (3, 3) predicted but ignored
    solid = s.error_overlay(rgb, pred, TARGET, opacity=1.0)
    assert tuple(solid[0, 0]) == s.ERROR_COLOURS["true positive"]
    assert tuple(solid[2, 1]) == s.ERROR_COLOURS["false positive"]
    assert tuple(solid[2, 0]) == s.ERROR_COLOURS["false negative"]
    assert tuple(solid[3, 3]) == (100, 100, 100), "ignored pixels are left as they are"
    assert tuple(solid[0, 3]) == (100, 100, 100), "true negatives too"
    blended = s.error_overlay(rgb, pred, TARGET)
    expected = np.rint(100 * (1 - s.ERROR_OPACITY) + np.array(s.ERROR_COLOURS["false positive"]) * s.ERROR_OPACITY)
    assert blended[2, 1].tolist() == expected.tolist()
    assert tuple(s.error_overlay(rgb, pred, TARGET == 1, opacity=1.0)[3, 3]) == s.ERROR_COLOURS["false positive"]


def test_cutout_alpha_is_the_mask():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    mask = np.random.default_rng(1).random((5, 7)) > 0.5
    cutout = s.cutout_rgba(rgb, mask)
    assert cutout.shape == (5, 7, 4) and cutout.dtype == np.uint8
    assert np.array_equal(cutout[:, :, 3], mask.astype(np.uint8) * 255)
    assert np.array_equal(cutout[:, :, :3], rgb)


def test_save_png_is_atomic_readable_and_lossless(tmp_path):
    rgba = s.cutout_rgba(np.full((3, 4, 3), 7, np.uint8), np.eye(3, 4, dtype=bool))
    path = s.save_png(rgba, tmp_path / "sub" / "cutout.png")
    assert np.array_equal(np.asarray(Image.open(path)), rgba)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    s.save_png(np.eye(3, dtype=bool), path)  # replaces; bool masks become 0/255
    assert np.array_equal(np.asarray(Image.open(path)), np.eye(3, dtype=np.uint8) * 255)
    assert [p.name for p in path.parent.iterdir()] == ["cutout.png"], "no temporary file left behind"
    with pytest.raises(ValueError):
        s.save_png(np.zeros((2, 2), np.float32), tmp_path / "x.png")


def test_calibration_of_a_calibrated_and_an_overconfident_head():
    from colorseg.segmentation.explain import calibration_chart, calibration_curve, expected_calibration_error

    target = np.zeros((10, 10), dtype=np.uint8)
    target[:7] = 1  # 70 % object
    calibrated = np.full((10, 10), 0.75, dtype=np.float32)  # the bin 0.7-0.8, 70 % object in it
    confidence, frequency, share = calibration_curve(calibrated, target)
    assert share[7] == 1 and frequency[7] == pytest.approx(0.7) and confidence[7] == pytest.approx(0.75)
    assert expected_calibration_error(confidence, frequency, share) == pytest.approx(0.05)
    overconfident = np.where(target == 1, 0.99, 0.99).astype(np.float32)  # sure of everything, 30 % wrong
    assert expected_calibration_error(*calibration_curve(overconfident, target)) == pytest.approx(0.29)
    ignored = target.copy()
    ignored[7:] = 255  # only the object pixels count: all object, all at 0.99
    assert expected_calibration_error(*calibration_curve(overconfident, ignored)) == pytest.approx(0.01)
    chart = calibration_chart({"cross_entropy": calibration_curve(calibrated, target),
                               "soft_iou": calibration_curve(overconfident, target)})  # fmt: skip
    assert chart.dtype == np.uint8 and chart.ndim == 3
