"""Looking at a segmentation: IoU against the decision threshold, how well each head's
probabilities are calibrated, where a mask is wrong, and the object cut out of its photo.

Targets are bool [H, W] or uint8 [H, W] with 0 = background, 1 = object and
seg_losses.IGNORE (255) = not labelled; ignored pixels count nowhere, as in training.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from colorseg.files import figure_to_array, save_png  # noqa: F401  (save_png: part of this module's API)
from colorseg.segmentation.losses import MASK_THRESHOLD, foreground_and_valid, iou_per_image

DEFAULT_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)
# The IoU levels the assignment's thresholded mIoU counts: an image scores a tenth for each
# of 0.5, 0.55, ..., 0.95 its IoU exceeds (losses.thresholded_iou).
ASSIGNMENT_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)

# Colours from Okabe & Ito's colour-blind-safe palette, each with one meaning across the app: the
# cross-entropy head orange, the soft-IoU head blue, and, in error maps, right bluish green, extra
# (false positive) reddish purple, missed (false negative) yellow. Fixed, so a legend written once stays true.
HEAD_COLOURS: dict[str, tuple[int, int, int]] = {"cross_entropy": (230, 159, 0), "soft_iou": (0, 114, 178)}
ERROR_COLOURS: dict[str, tuple[int, int, int]] = {
    "true positive": (0, 158, 115),
    "false positive": (204, 121, 167),
    "false negative": (240, 228, 66),
}
ERROR_OPACITY = 0.55  # the photo stays readable under the colours
HEAD_NAMES = {"cross_entropy": "cross-entropy", "soft_iou": "soft IoU"}
CALIBRATION_BINS = 10


def _target_tensor(target: np.ndarray) -> torch.Tensor:
    target = np.asarray(target)
    if target.dtype != np.bool_ and target.dtype != np.uint8:
        raise ValueError(f"a target is bool or uint8 (0, 1, 255 = ignored), got dtype {target.dtype}")
    return torch.from_numpy(np.ascontiguousarray(target))


def _foreground_and_valid(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    foreground, valid = foreground_and_valid(_target_tensor(target))
    return foreground.numpy(), valid.numpy()


def iou_threshold_curve(
    prob: np.ndarray, target: np.ndarray, thresholds: np.ndarray = DEFAULT_THRESHOLDS
) -> tuple[np.ndarray, np.ndarray]:
    """IoU of the mask ``prob > t`` for every threshold t: (thresholds, float64 ious).

    ``>`` as inference's predict thresholds at MASK_THRESHOLD; IoU by losses.iou_per_image (ignored
    pixels excluded, SMOOTH included), so the MASK_THRESHOLD point is the app's reported IoU.
    """
    prob = np.asarray(prob, dtype=np.float32)
    target_tensor = _target_tensor(target)
    if prob.shape != tuple(target_tensor.shape):
        raise ValueError(f"probabilities {prob.shape} and target {tuple(target_tensor.shape)} differ in shape")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    preds = torch.from_numpy(prob)[None] > torch.from_numpy(thresholds).float()[:, None, None]  # [T, H, W]
    ious = iou_per_image(preds, target_tensor[None].expand(len(thresholds), *prob.shape))
    return thresholds, ious.numpy()


def _matplotlib(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255 for c in colour)


def curve_chart(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    assignment_thresholds: np.ndarray = ASSIGNMENT_THRESHOLDS,
    width: float = 6.0,
    height: float = 3.2,
) -> np.ndarray:
    """IoU against the probability threshold, one line per head (keyed by loss name, in its
    HEAD_COLOURS colour), uint8 [H, W, 3].

    Dotted horizontal lines mark the IoU levels the assignment's thresholded mIoU counts,
    so one reads off how many tenths each head earns at each threshold; the dashed
    vertical line is the MASK_THRESHOLD the masks use.
    """
    figure = Figure(figsize=(width, height), dpi=100)
    axis = figure.add_subplot()
    for level in assignment_thresholds:
        axis.axhline(level, color="0.75", linestyle=":", linewidth=0.8)
    axis.axvline(MASK_THRESHOLD, color="0.4", linestyle="--", linewidth=0.8)
    for loss, (thresholds, ious) in curves.items():
        best, colour = int(np.argmax(ious)), _matplotlib(HEAD_COLOURS[loss])
        label = f"{HEAD_NAMES[loss]} (best {ious[best]:.2f} at {thresholds[best]:g})"
        axis.plot(thresholds, ious, marker=".", color=colour, label=label)
        axis.plot([thresholds[best]], [ious[best]], marker="o", markersize=8, fillstyle="none", color=colour)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("probability threshold")
    axis.set_ylabel("IoU")
    axis.set_title("IoU by threshold (dotted: the assignment's IoU levels 0.5-0.95)", fontsize=9)
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return figure_to_array(figure)


def calibration_curve(
    prob: np.ndarray, target: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability of a head's probabilities on one image: pixels grouped by predicted probability
    into ``bins`` equal bins, then per bin (mean predicted probability, fraction that is object,
    share of the pixels). A calibrated head lies on the diagonal: of the pixels it calls 70 %
    object, 70 % are. Ignored pixels count nowhere; empty bins are NaN."""
    prob = np.asarray(prob, dtype=np.float64)
    foreground, valid = _foreground_and_valid(target)
    if prob.shape != foreground.shape:
        raise ValueError(f"probabilities {prob.shape} and target {foreground.shape} differ in shape")
    p, y = prob[valid], foreground[valid].astype(np.float64)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=p, minlength=bins) / counts
        frequency = np.bincount(which, weights=y, minlength=bins) / counts
    return confidence, frequency, counts / max(counts.sum(), 1.0)


def expected_calibration_error(confidence: np.ndarray, frequency: np.ndarray, share: np.ndarray) -> float:
    """The share-weighted mean gap between the predicted and the observed object fraction (0: calibrated)."""
    seen = share > 0
    return float(np.sum(share[seen] * np.abs(confidence[seen] - frequency[seen])))


def calibration_chart(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], width: float = 6.0, height: float = 3.2
) -> np.ndarray:
    """Reliability diagram (left) and where the probabilities fall (right), one colour per head,
    uint8 [H, W, 3]: soft IoU tends to push probabilities to 0 and 1, cross-entropy to calibrate them."""
    figure = Figure(figsize=(width, height), dpi=100)
    reliability, histogram = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    reliability.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=0.8)
    centres = (np.arange(CALIBRATION_BINS) + 0.5) / CALIBRATION_BINS
    width_each = 0.4 / CALIBRATION_BINS
    for offset, (loss, (confidence, frequency, share)) in zip((-1, 1), curves.items()):
        colour, seen = _matplotlib(HEAD_COLOURS[loss]), share > 0
        error = expected_calibration_error(confidence, frequency, share)
        reliability.plot(confidence[seen], frequency[seen], marker="o", color=colour,
                         label=f"{HEAD_NAMES[loss]} (ECE {error:.3f})")  # fmt: skip
        histogram.bar(centres + offset * width_each / 2, share, width=width_each, color=colour)
    reliability.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted object probability", ylabel="fraction that is object")
    # Titles on the right: the app draws the picture's label over its top-left corner.
    reliability.set_title("calibration (diagonal: calibrated)", fontsize=9, loc="right")
    reliability.legend(fontsize=8, loc="best")
    histogram.set(xlim=(0, 1), xlabel="predicted probability", ylabel="share of pixels")
    histogram.set_title("where the probabilities fall", fontsize=9)
    figure.tight_layout()
    return figure_to_array(figure)


def error_overlay(rgb: np.ndarray, pred: np.ndarray, target: np.ndarray, opacity: float = ERROR_OPACITY) -> np.ndarray:
    """The photo with true positives, false positives and false negatives tinted in
    ERROR_COLOURS; true negatives and ignored pixels keep the photo's own colours."""
    rgb, pred = np.asarray(rgb), np.asarray(pred, dtype=bool)
    foreground, valid = _foreground_and_valid(target)
    if rgb.shape[:2] != pred.shape or pred.shape != foreground.shape:
        raise ValueError(f"image {rgb.shape[:2]}, prediction {pred.shape} and target {foreground.shape} differ in size")
    out = rgb[:, :, :3].astype(np.float32)
    regions = {
        "true positive": pred & foreground & valid,
        "false positive": pred & ~foreground & valid,
        "false negative": ~pred & foreground & valid,
    }
    for name, where in regions.items():
        out[where] = (1 - opacity) * out[where] + opacity * np.array(ERROR_COLOURS[name], np.float32)
    return np.rint(out).astype(np.uint8)


def cutout_rgba(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with alpha 255 on the mask and 0 elsewhere, uint8 [H, W, 4]."""
    rgb, mask = np.asarray(rgb), np.asarray(mask, dtype=bool)
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"image {rgb.shape[:2]} and mask {mask.shape} differ in size")
    return np.concatenate([rgb[:, :, :3], (mask * np.uint8(255))[:, :, None]], axis=2).astype(np.uint8)
