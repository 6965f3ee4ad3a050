"""Losses and metrics of Part D on hand-made tensors."""

import pytest
import torch

from colorseg.segmentation import losses as seg_losses


def _logits_for(masks: torch.Tensor, confidence: float = 20.0) -> torch.Tensor:
    """Logits [B, 2, H, W] that predict ``masks`` with the given margin."""
    sign = masks.float() * 2 - 1
    return torch.stack([-confidence * sign, confidence * sign], dim=1)


def test_soft_iou_loss_is_about_zero_for_a_perfect_prediction():
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 2:6, 2:6] = True
    masks[1, :, :3] = True
    assert seg_losses.soft_iou_loss(_logits_for(masks), masks).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_iou_loss_is_about_one_for_the_opposite_prediction():
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 2:6, 2:6] = True
    assert seg_losses.soft_iou_loss(_logits_for(~masks), masks).item() == pytest.approx(1.0, abs=1e-6)


def test_soft_iou_loss_stays_in_unit_interval_and_gradients_flow():
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        logits = (3 * torch.randn(3, 2, 6, 7, generator=generator)).requires_grad_()
        masks = torch.rand(3, 6, 7, generator=generator) > 0.5
        loss = seg_losses.soft_iou_loss(logits, masks)
        assert 0.0 <= loss.item() <= 1.0
        loss.backward()
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_soft_iou_loss_matches_its_formula():
    logits = torch.tensor([[[[0.0, 2.0]], [[1.0, -1.0]]]])  # [1, 2, 1, 2]
    masks = torch.tensor([[[True, False]]])
    p = logits.softmax(dim=1)[0, 1, 0]
    intersection = p[0] * 1
    union = (p[0] + 1 - p[0]) + p[1]
    expected = 1 - (intersection + seg_losses.SMOOTH) / (union + seg_losses.SMOOTH)
    assert seg_losses.soft_iou_loss(logits, masks).item() == pytest.approx(expected.item(), rel=1e-6)


def _pair_with_iou(intersection: int, union: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Target = first ``intersection`` pixels; prediction adds ``union - intersection`` more."""
    target = torch.zeros(1, 10, 10, dtype=torch.bool)
    pred = torch.zeros(1, 10, 10, dtype=torch.bool)
    target.view(-1)[:intersection] = True
    pred.view(-1)[:union] = True
    return pred, target


def _mean_metrics(pred, target) -> dict[str, float]:
    return {name: values.mean().item() for name, values in seg_losses.per_image_metrics(pred, target).items()}


@pytest.mark.parametrize(
    "intersection, union, expected",
    # Away from the thresholds themselves, where float rounding decides (as in the assignment).
    [(10, 10, 1.0), (58, 100, 0.2), (61, 100, 0.3), (49, 100, 0.0), (52, 100, 0.1), (93, 100, 0.9), (96, 100, 1.0)],
)
def test_thresholded_miou_on_hand_made_masks(intersection, union, expected):
    pred, target = _pair_with_iou(intersection, union)
    metrics = _mean_metrics(pred, target)
    assert metrics["iou"] == pytest.approx(intersection / union, abs=1e-6)
    assert metrics["miou_thresholded"] == pytest.approx(expected)


def test_metrics_average_over_images():
    pred_a, target_a = _pair_with_iou(10, 10)  # IoU 1 -> 1.0
    pred_b, target_b = _pair_with_iou(58, 100)  # IoU 0.58 -> 0.2
    pred, target = torch.cat([pred_a, pred_b]), torch.cat([target_a, target_b])
    # Image b: 42 false positives out of 100 pixels, so pixel accuracy (1.0 + 0.58) / 2.
    metrics = _mean_metrics(pred, target)
    assert metrics == pytest.approx({"miou_thresholded": 0.6, "iou": 0.79, "pixel_accuracy": 0.79})


def test_empty_prediction_of_empty_mask_scores_one():
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)
    metrics = _mean_metrics(empty, empty)
    assert metrics["miou_thresholded"] == 1.0 and metrics["iou"] == pytest.approx(1.0)


def test_predicted_masks_are_the_argmax():
    logits = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    assert seg_losses.predicted_masks(logits).tolist() == [[[False, True]]]


def test_ignored_pixels_count_in_no_loss_and_no_metric():
    # Two images whose only difference is what their ignored pixels hold: every loss and
    # metric must be the same, and equal to the score of the labelled pixels alone.
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 4, 6, requires_grad=True)
    masks = torch.zeros(1, 4, 6, dtype=torch.uint8)
    masks[:, 1:3, 1:4] = 1
    masks[:, :, 5] = seg_losses.IGNORE
    other_logits = logits.detach().clone()
    other_logits[:, :, :, 5] = torch.tensor([-9.0, 9.0]).view(1, 2, 1)  # confident foreground where ignored
    for loss in (seg_losses.cross_entropy_loss, seg_losses.soft_iou_loss):
        assert loss(logits, masks).item() == pytest.approx(loss(other_logits, masks).item(), abs=1e-6)
        assert loss(logits, masks).item() == pytest.approx(loss(logits[..., :5], masks[..., :5]).item(), abs=1e-6)
    loss = seg_losses.cross_entropy_loss(logits, masks)
    loss.backward()
    assert (logits.grad[..., 5] == 0).all()

    pred = torch.zeros(1, 4, 6, dtype=torch.bool)
    pred[:, 1:3, 1:3] = True
    pred_with_noise = pred.clone()
    pred_with_noise[:, :, 5] = True
    for p in (pred, pred_with_noise):
        metrics = {k: v.item() for k, v in seg_losses.per_image_metrics(p, masks).items()}
        assert metrics["iou"] == pytest.approx(4 / 6)
        assert metrics["pixel_accuracy"] == pytest.approx(18 / 20)  # 2 of the 20 labelled pixels wrong
        assert metrics["miou_thresholded"] == pytest.approx(0.4)  # IoU 0.667 passes 0.5 ... 0.65


def test_cross_entropy_of_a_fully_ignored_batch_is_zero():
    logits = torch.randn(1, 2, 3, 3)
    assert (
        seg_losses.cross_entropy_loss(logits, torch.full((1, 3, 3), seg_losses.IGNORE, dtype=torch.uint8)).item() == 0
    )
