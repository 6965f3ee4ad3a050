"""Segmentation inference: one body pass, both heads, masks at the input's resolution.

The image is resized (antialiased bilinear, aspect ratio not kept: the body was trained on
photos squeezed to a square the same way) to ``working_size`` x ``working_size``; both
heads' logits are upsampled straight from the feature grid to the input's height and width,
as DeepLabV3 itself upsamples to its input, so any size and aspect ratio works.

The default ``working_size`` is the one training chose on its training photos (the body's
``working_size``, among a few multiples of its training size: colorseg.segmentation.pipeline).

With ``flip_average`` (what train_all.py records for the bodies it trains) the photo and its
mirror image go through the body together, as a batch of two, and each head's logits for
the mirror are flipped back and averaged with the photo's on the feature grid: the body
learnt with random flips, so the two views err differently. Measured on the committed body,
it raised flowers' and horses' validation IoU by 0.01-0.02 and left DAVIS's within 0.01
(README, "Results"). Without it, one view: the assignment's protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colorseg.errors import UsageError, WeightsError
from colorseg.paths import DEFAULT_WEIGHTS_DIR
from colorseg.registry import SEG_BODY, SEG_HEAD
from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation.data import Sample, load_samples, resize_images
from colorseg.segmentation.losses import SEG_LOSSES
from colorseg.segmentation.models import upsample_logits
from colorseg.segmentation.sources import ALL_SOURCES_TASK, SEG_TASKS
from colorseg.weights import load_module

# What each weight file is called (stem -> stem.safetensors + stem.json): one body, a head per task and loss.
SEG_BODY_STEM = "seg_body"
FLIP_AVERAGE = True  # how train_all.py scores the bodies it trains, recorded in their JSON
MIN_WORKING_SIZE = 16  # one cell of the body's stride-16 feature grid
DEFAULT_TASK = ALL_SOURCES_TASK


@dataclass
class SegmentationResult:
    prob_cross_entropy: np.ndarray  # float32 [H, W], foreground probability
    prob_soft_iou: np.ndarray  # float32 [H, W]
    mask_cross_entropy: np.ndarray  # bool [H, W] (probability > MASK_THRESHOLD, i.e. the argmax)
    mask_soft_iou: np.ndarray  # bool [H, W]


def seg_head_stem(task: str, loss: str) -> str:
    return f"seg_head_{task}_{loss}"


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]; greyscale [H, W] and RGBA [H, W, 4] are converted."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    return np.array(image[:, :, :3])  # a writable, contiguous copy for torch.from_numpy


class Segmenter:
    """One frozen body and Part D's two heads (cross-entropy, soft IoU) for each task."""

    def __init__(
        self,
        body: nn.Module,
        heads: dict[str, dict[str, nn.Module]],
        working_size: int,
        description: dict[str, Any],
        device: str | torch.device = "cpu",
        flip_average: bool = False,
    ):
        self.device = torch.device(device)
        self.body = body.to(self.device).eval()
        self.heads = {
            task: {loss: pair[loss].to(self.device).eval() for loss in SEG_LOSSES} for task, pair in heads.items()
        }
        self.working_size = working_size
        self.description = description
        self.flip_average = flip_average

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.heads)

    def _check_task(self, task: str) -> None:
        if task not in self.heads:
            raise UsageError(f"no heads for task {task!r}; these weights have: {', '.join(self.heads)}")

    @torch.inference_mode()
    def probabilities(
        self, image: np.ndarray, working_size: int | None = None, tasks: tuple[str, ...] | None = None
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Foreground probability of each head of each task, {task: {loss: float [H, W]}},
        from one body pass (over the photo and, with ``flip_average``, its mirror image)."""
        tasks = self.tasks if tasks is None else tasks
        for task in tasks:
            self._check_task(task)
        rgb = torch.from_numpy(_as_rgb(image)).permute(2, 0, 1)[None].to(self.device)
        height, width = rgb.shape[-2:]
        size = working_size or self.working_size
        if size < MIN_WORKING_SIZE:
            raise ValueError(f"working_size must be at least {MIN_WORKING_SIZE} px, got {size}")
        views = resize_images(rgb, (size, size))
        if self.flip_average:
            views = torch.cat([views, views.flip(-1)])
        features = self.body(views)  # [views, 256, size/s, size/s]

        def probability(head: nn.Module) -> torch.Tensor:
            logits = head(features)
            if self.flip_average:  # bilinear upsampling commutes with the flip: average before it
                logits = (logits[:1] + logits[1:].flip(-1)) / 2
            return upsample_logits(logits, (height, width)).softmax(dim=1)[0, 1]

        return {task: {loss: probability(head) for loss, head in self.heads[task].items()} for task in tasks}

    def predict(
        self, image: np.ndarray, working_size: int | None = None, task: str = DEFAULT_TASK
    ) -> SegmentationResult:
        """One task's two heads: probabilities and masks for a uint8 RGB image [H, W, 3]."""
        probs = self.probabilities(image, working_size, (task,))[task]
        probs = {loss: prob.float().cpu().numpy() for loss, prob in probs.items()}
        return SegmentationResult(
            prob_cross_entropy=probs["cross_entropy"],
            prob_soft_iou=probs["soft_iou"],
            mask_cross_entropy=probs["cross_entropy"] > seg_losses.MASK_THRESHOLD,
            mask_soft_iou=probs["soft_iou"] > seg_losses.MASK_THRESHOLD,
        )


def load_segmenter(
    weights_dir: str | Path = DEFAULT_WEIGHTS_DIR, device: str | torch.device = "cpu", flip_average: bool | None = None
) -> Segmenter:
    """Rebuild the body and every task's heads from ``weights_dir``; WeightsError if anything
    is missing, damaged, or a head was trained on a different body. ``flip_average`` defaults
    to the way the body's own metrics were scored (its JSON; one view if it does not say)."""
    try:
        body, body_description = load_module(weights_dir, SEG_BODY_STEM, device, expect=SEG_BODY)
        hint = body_description.get("regenerate", "python train_all.py --only segmentation")
        tasks = body_description.get("tasks") or [
            t for t in SEG_TASKS if (Path(weights_dir) / f"{seg_head_stem(t, SEG_LOSSES[0])}.json").is_file()
        ]
        if not tasks:
            raise WeightsError(f"no segmentation heads in {weights_dir}; regenerate them with `{hint}`")
        heads: dict[str, dict[str, nn.Module]] = {}
        head_descriptions: dict[str, dict[str, Any]] = {}
        for task in tasks:
            heads[task] = {}
            for loss in SEG_LOSSES:
                stem = seg_head_stem(task, loss)
                heads[task][loss], head_descriptions[stem] = load_module(weights_dir, stem, device, expect=SEG_HEAD)
    except ValueError as error:  # e.g. an unknown backbone name in a hand-edited JSON
        raise WeightsError(f"cannot rebuild the segmentation model in {weights_dir}: {error}") from None
    for stem, description in head_descriptions.items():
        if description.get("body_sha256") != body_description["sha256"]:
            raise WeightsError(
                f"the head {stem} in {weights_dir} was trained on another body than "
                f"{SEG_BODY_STEM}.safetensors; regenerate them together with `{hint}`"
            )
    # Bodies saved without a chosen inference size run at their training size.
    working_size = body_description.get("working_size", body_description.get("image_size"))
    if not isinstance(working_size, int) or working_size < MIN_WORKING_SIZE:
        raise WeightsError(
            f"{Path(weights_dir) / SEG_BODY_STEM}.json lacks a valid working_size/image_size; "
            f"regenerate it with `{hint}`"
        )
    description = {"body": body_description, "heads": head_descriptions}
    if flip_average is None:
        flip_average = bool(body_description.get("flip_average", False))
    return Segmenter(body, heads, working_size, description, device, flip_average)


def evaluate_samples(
    segmenter: Segmenter, samples: list[Sample], tasks: tuple[str, ...] | None = None, working_size: int | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """{task: {loss: the three metrics averaged over ``samples``}}, each image scored at its
    mask's size, with ignored pixels left out; one body pass per image serves every head."""
    tasks = segmenter.tasks if tasks is None else tasks
    rows: dict[str, dict[str, list[dict[str, float]]]] = {t: {loss: [] for loss in SEG_LOSSES} for t in tasks}
    for sample in samples:
        for task, probs in segmenter.probabilities(sample.image, working_size, tasks).items():
            for loss, prob in probs.items():
                rows[task][loss].append(image_metrics(prob, sample.mask))
    return {task: {loss: mean_metrics(r) for loss, r in by_loss.items()} for task, by_loss in rows.items()}


def image_metrics(probability: torch.Tensor, mask: np.ndarray) -> dict[str, float]:
    """One image's three metrics: its foreground probability [H, W] above MASK_THRESHOLD against
    its mask (0 / 1 / IGNORE, the same size). Every scorer (heads, baseline) goes through this."""
    target = torch.from_numpy(np.array(mask))[None].to(probability.device)
    predicted = (probability > seg_losses.MASK_THRESHOLD)[None]
    return {metric: value.item() for metric, value in seg_losses.per_image_metrics(predicted, target).items()}


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-image metrics averaged over the images."""
    return {metric: math.fsum(row[metric] for row in rows) / len(rows) for metric in rows[0]}


def evaluate_folder(
    data_dir: str | Path,
    split: str = "all",
    task: str = DEFAULT_TASK,
    weights_dir: str | Path = DEFAULT_WEIGHTS_DIR,
    device: str | torch.device = "cpu",
    flip_average: bool | None = None,
) -> dict[str, dict[str, float]]:
    """Score one task's two heads from ``weights_dir`` on ``data_dir`` (any layout of
    colorseg.segmentation.data): ``{"cross_entropy": {"miou_thresholded", "iou", "pixel_accuracy"},
    "soft_iou": {...}}``."""
    segmenter = load_segmenter(weights_dir, device, flip_average)
    segmenter._check_task(task)
    return evaluate_samples(segmenter, load_samples(data_dir, split), (task,))[task]
