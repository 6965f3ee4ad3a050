"""DeepLabV3 split into one body for every task and 1x1-conv heads (Part D of the assignment).

torchvision's DeepLabV3 computes ``backbone -> classifier -> bilinear upsample`` where the
classifier (``DeepLabHead``) is [ASPP, 3x3 conv, BatchNorm, ReLU, 1x1 conv]. Part D replaces
``classifier[HEAD_INDEX]``, the final 1x1 conv, by a fresh ``Conv2d(256, 2, 1)`` and trains
only that. Here the body is everything before it: it maps normalised images [B, 3, H, W] to
features [B, 256, H/s, W/s] (s = 8 for the ResNets, 16 for MobileNetV3), and every head is a
separate module, so one body pass serves any number of heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tv_seg

from colorseg.registry import SEG_BODY, SEG_HEAD, register_model

# Position of the final 1x1 conv inside torchvision's DeepLabHead (the layer Part D replaces).
HEAD_INDEX = 4
FEATURE_CHANNELS = 256
NUM_CLASSES = 2  # background, foreground
DEFAULT_BACKBONE = "mobilenet_v3_large"
SOURCES = ("scratch", "pretrained")

# Backbone name -> (torchvision builder, its COCO-pretrained weights).
BACKBONES = {
    "mobilenet_v3_large": (
        tv_seg.deeplabv3_mobilenet_v3_large,
        tv_seg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
    ),
    "resnet50": (tv_seg.deeplabv3_resnet50, tv_seg.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
    "resnet101": (tv_seg.deeplabv3_resnet101, tv_seg.DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1),
}

# The pretrained weights expect ImageNet-normalised input; the scratch body uses the same
# so that both sources share one preprocessing.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PretrainedUnavailable(RuntimeError):
    """torchvision could not provide the COCO-pretrained weights (usually: no network)."""


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [B, 3, H, W] -> float32 ImageNet-normalised [B, 3, H, W]."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def _backbone_entry(backbone: str):
    try:
        return BACKBONES[backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}") from None


def _valid_outputs(size: int, offset: int) -> tuple[int, int] | None:
    """Output positions [start, stop) whose input position + offset lies inside [0, size)."""
    start, stop = max(0, -offset), min(size, size - offset)
    return (start, stop) if start < stop else None


class AtrousConv2d(nn.Conv2d):
    """A dilated 3x3 "same" convolution that skips the work of taps reading zero padding.

    DeepLabV3's ASPP uses dilation rates 12, 24 and 36, made for 33x33 feature maps. On the
    8-16 cell maps of 128-256 px inputs most off-centre taps read only padding: at 14x14
    with rate 12, tap (+1, 0) reads real input for output rows 0-1 only, and rates >= the
    map size leave the centre tap alone. Where that saves at least half the work, this sums
    each tap as a 1x1 convolution over just the outputs it reaches: the same output and
    the same gradients (padding taps get zero gradient either way) for a fraction of the
    cost. Elsewhere it is the plain convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        dil_h, dil_w = self.dilation
        taps = []  # (kernel row, kernel column, output rows, output columns)
        for row in (-1, 0, 1):
            rows = _valid_outputs(height, row * dil_h)
            for col in (-1, 0, 1):
                cols = _valid_outputs(width, col * dil_w)
                if rows and cols and (row, col) != (0, 0):
                    taps.append((row, col, rows, cols))
        work = height * width + sum((r1 - r0) * (c1 - c0) for _, _, (r0, r1), (c0, c1) in taps)
        if 2 * work > 9 * height * width:
            return super().forward(x)
        out = F.conv2d(x, self.weight[:, :, 1:2, 1:2], self.bias, groups=self.groups)  # centre tap
        for row, col, (r0, r1), (c0, c1) in taps:
            source = x[:, :, r0 + row * dil_h : r1 + row * dil_h, c0 + col * dil_w : c1 + col * dil_w]
            tap = self.weight[:, :, row + 1 : row + 2, col + 1 : col + 2]
            out[:, :, r0:r1, c0:c1] += F.conv2d(source, tap, groups=self.groups)
        return out


def _use_atrous_convs(module: nn.Module) -> None:
    """Swap every dilated 3x3 stride-1 same-size conv under ``module`` for AtrousConv2d
    (same parameters and state-dict keys)."""
    for name, child in module.named_children():
        is_atrous = (
            type(child) is nn.Conv2d
            and child.kernel_size == (3, 3)
            and child.stride == (1, 1)
            and child.dilation != (1, 1)
            and child.padding == child.dilation
            and child.padding_mode == "zeros"
        )
        if is_atrous:
            atrous = AtrousConv2d(
                child.in_channels, child.out_channels, 3, padding=child.padding,
                dilation=child.dilation, groups=child.groups, bias=child.bias is not None,
            )
            atrous.load_state_dict(child.state_dict())
            setattr(module, name, atrous)
        else:
            _use_atrous_convs(child)


@register_model({"backbone": tuple(BACKBONES)}, kind=SEG_BODY)
class DeepLabV3Body(nn.Module):
    """DeepLabV3 without ``classifier[HEAD_INDEX]``: images -> 256-channel features.

    Parameter names equal torchvision's (``backbone.*``, ``classifier.0-3.*``), so a
    torchvision state dict loads after dropping the final conv and the auxiliary head.
    """

    def __init__(self, backbone: str = DEFAULT_BACKBONE):
        super().__init__()
        builder, _ = _backbone_entry(backbone)
        full = builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES, aux_loss=False)
        self.backbone = full.backbone  # IntermediateLayerGetter, returns {"out": features}
        self.classifier = nn.Sequential(*list(full.classifier.children())[:HEAD_INDEX])
        _use_atrous_convs(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images)["out"])


# The segmenter reads exactly two classes from a head over the body's 256 feature channels.
@register_model({"in_channels": (FEATURE_CHANNELS,), "num_classes": (NUM_CLASSES,)}, kind=SEG_HEAD)
def DeepLabV3Head(in_channels: int = FEATURE_CHANNELS, num_classes: int = NUM_CLASSES) -> nn.Conv2d:
    """The replacement for ``classifier[HEAD_INDEX]``: a fresh 1x1 conv."""
    return nn.Conv2d(in_channels, num_classes, kernel_size=1)


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Feature-grid logits to ``size`` as DeepLabV3.forward upsamples them: [B, 2, *size]."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def head_logits(head: nn.Module, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Apply a head to body features and upsample as DeepLabV3.forward does: [B, 2, *size]."""
    return upsample_logits(head(features), size)


class SegmentationNet(nn.Module):
    """Body + one head, the computation of a torchvision DeepLabV3 (its ``["out"]``)."""

    def __init__(self, body: nn.Module, head: nn.Module):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return head_logits(self.head, self.body(images), images.shape[-2:])

    def train(self, mode: bool = True) -> "SegmentationNet":
        super().train(mode)
        # A frozen body stays in eval mode: its BatchNorm layers keep their stored statistics
        # instead of updating them, so the body is a fixed function (which is what makes
        # training on cached features exact). The assignment's loop called model.train() on
        # its "frozen" DeepLabV3 and so kept changing those statistics.
        if not any(p.requires_grad for p in self.body.parameters()):
            self.body.eval()
        return self


def freeze_body(net: SegmentationNet) -> list[nn.Parameter]:
    """Freeze everything but the head (body in eval mode too); return what is left to train."""
    net.body.requires_grad_(False)
    net.head.requires_grad_(True)
    net.train(net.training)
    return list(net.head.parameters())


def pretrained_body(backbone: str = DEFAULT_BACKBONE) -> DeepLabV3Body:
    """The body of torchvision's COCO-pretrained DeepLabV3 (downloaded by torchvision)."""
    builder, weights = _backbone_entry(backbone)
    try:
        full = builder(weights=weights)
    except Exception as error:  # download failures come as URLError, OSError, RuntimeError, ...
        raise PretrainedUnavailable(
            f"could not get torchvision's COCO-pretrained DeepLabV3-{backbone} weights from "
            f"{weights.url} ({type(error).__name__}: {error}). Without a network, train the "
            "body from scratch instead: --seg-source scratch"
        ) from None
    body = DeepLabV3Body(backbone)
    body.backbone.load_state_dict(full.backbone.state_dict())
    body.classifier.load_state_dict(nn.Sequential(*list(full.classifier.children())[:HEAD_INDEX]).state_dict())
    return body
