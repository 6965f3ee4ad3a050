"""Question A.3: outputs, weights and connections of every layer, measured on the real module.

A forward pass of one input [1, C, H, W] with forward hooks on every leaf module gives
each layer's real input and output shapes (skip connections and all), in execution
order. Counting rules (the assignment's Question A.3; README.md gives the table):

- outputs: the values a layer produces for one image;
- weights: its parameters, biases and BatchNorm's two per-channel parameters included;
- connections: for each output value, the input values it reads (plus 1 for a bias),
  summed over the layer: a convolution output reads k²·C_in/groups inputs and a bias;
  a max-pool output reads k² inputs; a BatchNorm or nearest-upsample output reads 1;
  a transposed-convolution output counts only the inputs that really contribute to it
  (its kernel taps that land on a real input, not on the zeros between or around them);
- activations (ReLU) are not layers: no weights, and they are left out of the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Parameter-free elementwise activations: "ReLU is not a layer" in the assignment's count.
_NOT_LAYERS = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Identity, nn.Dropout)


@dataclass(frozen=True)
class LayerRow:
    name: str  # qualified module name, e.g. "blocks.0.0"
    kind: str  # readable description, e.g. "Conv2d 3×3, 1→32"
    output_shape: tuple[int, ...]  # [C, H, W] for one image
    outputs: int
    weights: int
    connections: int


@dataclass(frozen=True)
class LayerTable:
    rows: list[LayerRow]
    input_shape: tuple[int, ...]  # [C, H, W]

    @property
    def outputs(self) -> int:
        return sum(row.outputs for row in self.rows)

    @property
    def weights(self) -> int:
        return sum(row.weights for row in self.rows)

    @property
    def connections(self) -> int:
        return sum(row.connections for row in self.rows)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _transposed_taps(size_in: int, size_out: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Sum over output positions of the kernel taps that read a real input, along one axis.

    Output o receives input i through tap t when o = i·stride - padding + t·dilation with
    0 <= i < size_in; every such (i, t) pair with 0 <= o < size_out is one contribution.
    """
    count = 0
    for i in range(size_in):
        for t in range(kernel):
            if 0 <= i * stride - padding + t * dilation < size_out:
                count += 1
    return count


def _describe(module: nn.Module) -> str:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        kh, kw = module.kernel_size
        stride = f", stride {module.stride[0]}" if module.stride != (1, 1) else ""
        # The base type: UNet's final conv is a Conv2d over a concatenation (colour.models).
        kind = "ConvTranspose2d" if isinstance(module, nn.ConvTranspose2d) else "Conv2d"
        return f"{kind} {kh}×{kw}{stride}, {module.in_channels}→{module.out_channels}"
    if isinstance(module, nn.MaxPool2d):
        return f"MaxPool2d {_pair(module.kernel_size)[0]}×{_pair(module.kernel_size)[1]}"
    if isinstance(module, nn.Upsample):
        return f"Upsample ×{module.scale_factor:g} ({module.mode})" if module.scale_factor else "Upsample"
    if isinstance(module, nn.BatchNorm2d):
        return f"BatchNorm2d {module.num_features}"
    return type(module).__name__


def _connections(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Connections of one layer from its input x [1, C, H, W] and output y [1, C', H', W']."""
    outputs = y[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        reads = kh * kw * module.in_channels // module.groups + (module.bias is not None)
        return outputs * reads
    if isinstance(module, nn.ConvTranspose2d):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (module.kernel_size, module.stride, module.padding, module.dilation)
        # Taps separate over the two axes, so the 2-D sum is the product of the 1-D sums.
        taps = _transposed_taps(x.shape[2], y.shape[2], kh, sh, ph, dh) * _transposed_taps(
            x.shape[3], y.shape[3], kw, sw, pw, dw
        )
        per_channel = taps * module.in_channels // module.groups
        bias = y.shape[2] * y.shape[3] if module.bias is not None else 0
        return module.out_channels * (per_channel + bias)
    if isinstance(module, nn.MaxPool2d):
        kh, kw = _pair(module.kernel_size)
        return outputs * kh * kw
    if isinstance(module, nn.Upsample):
        # Nearest reads one input; bilinear blends four.
        return outputs * (1 if module.mode == "nearest" else 4)
    if isinstance(module, nn.BatchNorm2d):
        return outputs
    raise TypeError(f"no counting rule for layer type {type(module).__name__}")


def layer_modules(model: nn.Module) -> list[nn.Module]:
    """The modules that count as layers: leaf modules that are not activations. Shared with
    colorseg.colour.explain so that its captured activations are exactly this table's rows."""
    return [m for m in model.modules() if not any(m.children()) and not isinstance(m, _NOT_LAYERS)]


def layer_table(model: nn.Module, height: int, width: int, in_channels: int | None = None) -> LayerTable:
    """Run ``model`` on one zero image [1, C, height, width] and count every layer (A.3).

    ``in_channels`` defaults to the first convolution's input channels.
    """
    if in_channels is None:
        first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))), None)
        if first is None:
            raise TypeError(f"{type(model).__name__} has no convolution to take the input channels from")
        in_channels = first.in_channels
    rows: list[LayerRow] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        rows.append(
            LayerRow(
                name=names[module],
                kind=_describe(module),
                output_shape=tuple(output.shape[1:]),
                outputs=output[0].numel(),
                weights=sum(p.numel() for p in module.parameters(recurse=False)),
                connections=_connections(module, inputs[0], output),
            )
        )

    handles = [leaf.register_forward_hook(record) for leaf in layer_modules(model)]
    was_training = model.training
    try:
        model.eval()  # BatchNorm must not update running statistics for a counting pass
        parameter = next(model.parameters())
        with torch.inference_mode():
            model(torch.zeros(1, in_channels, height, width, dtype=parameter.dtype, device=parameter.device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return LayerTable(rows=rows, input_shape=(in_channels, height, width))
