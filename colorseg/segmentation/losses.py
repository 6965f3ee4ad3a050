"""Segmentation losses and metrics (Part D), as free functions.

Shapes: logits [B, 2, H, W] (class 1 = foreground); masks [B, H, W], either bool or
uint8/long with 0 = background, 1 = foreground and IGNORE (255) = not labelled (the Oxford
flowers' thin region boundaries). Ignored pixels count in no loss and no metric.
Every metric is computed per image and then averaged over the images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The assignment's smoothing term: an empty prediction of an empty mask scores IoU 1.
SMOOTH = 1e-6
# Mask value of pixels that are not labelled; ignored by every loss and metric.
IGNORE = 255
# A pixel is foreground when its probability is above this (for the cross-entropy head, the
# argmax of its two classes). Masks, reported IoU and the app all use it.
MASK_THRESHOLD = 0.5
# Part D's two losses (D.1, D.2): every task has a head trained with each.
SEG_LOSSES = ("cross_entropy", "soft_iou")


def foreground_and_valid(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """bool foreground and bool labelled-pixel masks of a mask batch (any dtype above)."""
    if masks.dtype == torch.bool:
        return masks, torch.ones_like(masks)
    return masks == 1, masks != IGNORE


def cross_entropy_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel cross-entropy over the labelled pixels (0 when none is labelled)."""
    target = masks.long()
    total = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="sum")
    return total / (target != IGNORE).sum().clamp(min=1)


def soft_iou_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Part D.2: p = softmax(logits)[:, 1], I = sum p*y, U = sum (p + y - p*y), 1 - I/U.

    Computed per image and averaged, so that large and small objects weigh the same;
    the result lies in [0, 1] and is about 0 for a confident, correct prediction.
    """
    prob = logits.softmax(dim=1)[:, 1]
    foreground, valid = foreground_and_valid(masks)
    prob, target = prob * valid, foreground.to(prob.dtype)
    intersection = (prob * target).sum(dim=(1, 2))
    union = (prob + target - prob * target).sum(dim=(1, 2))
    return 1 - ((intersection + SMOOTH) / (union + SMOOTH)).mean()


def predicted_masks(logits: torch.Tensor) -> torch.Tensor:
    """Argmax masks, bool [B, H, W]."""
    return logits.argmax(dim=1) == 1


def iou_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of bool predictions with target masks over the labelled pixels, one value per
    image [B] (1 when both are empty)."""
    foreground, valid = foreground_and_valid(target)
    pred = pred.bool() & valid
    intersection = (pred & foreground).sum(dim=(1, 2)).double()
    union = (pred | foreground).sum(dim=(1, 2)).double()
    return (intersection + SMOOTH) / (union + SMOOTH)


def thresholded_iou(iou: torch.Tensor) -> torch.Tensor:
    """The assignment's score per image: the fraction of thresholds 0.5, 0.55, ..., 0.95 that
    the IoU exceeds, i.e. ceil(clamp(20 (IoU - 0.5), 0, 10)) / 10."""
    return torch.clamp(20 * (iou - 0.5), 0, 10).ceil() / 10  # 0.5: the lowest threshold, not MASK_THRESHOLD


def pixel_accuracy_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of the labelled pixels labelled correctly, one value per image [B]."""
    foreground, valid = foreground_and_valid(target)
    correct = ((pred.bool() == foreground) & valid).sum(dim=(1, 2)).double()
    return correct / valid.sum(dim=(1, 2)).clamp(min=1)


def per_image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three reported metrics of bool masks [B, H, W], one value per image each [B]
    (images of different sizes are scored one batch each and the values concatenated)."""
    iou = iou_per_image(pred, target)
    return {
        "miou_thresholded": thresholded_iou(iou),
        "iou": iou,
        "pixel_accuracy": pixel_accuracy_per_image(pred, target),
    }


def cross_entropy_plus_soft_iou_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Sum of both: cross-entropy's per-pixel signal plus soft IoU's weight on the object."""
    return cross_entropy_loss(logits, masks) + soft_iou_loss(logits, masks)


LOSSES = {
    "cross_entropy": cross_entropy_loss,
    "soft_iou": soft_iou_loss,
    "cross_entropy+soft_iou": cross_entropy_plus_soft_iou_loss,
}
