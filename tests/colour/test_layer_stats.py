"""Question A.3 from forward hooks, against DESIGN.md's closed forms and brute-force counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from colorseg.colour.layer_stats import layer_table
from colorseg.registry import create_model


def _closed_forms(size: int, nic: int, nf: int, nc: int) -> tuple[int, int, int]:
    """PoolUpsampleNet, kernel 3. Outputs and weights as DESIGN.md states them for 32x32
    (outputs x4 at 64x64, weights unchanged); connections summed by hand from the counting
    rule over the 13 layers at 32x32 (conv k²·C_in + 1, pool 4, BatchNorm 1, upsample 1),
    every term scaling with the number of pixels."""
    scale = (size // 32) ** 2
    outputs = scale * (2880 * nf + 3328 * nc)
    weights = 36 * nf**2 + 9 * nc**2 + 9 * nic * nf + 9 * nf * nc + 12 * nf + 4 * nc
    connections = scale * (5760 * nf**2 + 9216 * nic * nf + 2304 * nf * nc + 9216 * nc**2 + 4032 * nf + 3328 * nc)
    return outputs, weights, connections


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("nic, nf, nc", [(1, 32, 24), (1, 8, 10), (3, 16, 24)])
def test_pool_upsample_net_matches_closed_forms(size, nic, nf, nc):
    model = create_model("PoolUpsampleNet", num_filters=nf, num_colours=nc, num_in_channels=nic)
    table = layer_table(model, size, size)
    assert (table.outputs, table.weights, table.connections) == _closed_forms(size, nic, nf, nc)
    assert table.weights == sum(p.numel() for p in model.parameters())
    assert len(table.rows) == 13, "4 blocks of conv + resample + BatchNorm, and the final conv; ReLU is no layer"


def test_pool_upsample_rows_at_32():
    table = layer_table(create_model("PoolUpsampleNet"), 32, 32)
    first, pool, norm = table.rows[:3]
    assert (first.outputs, first.weights, first.connections) == (32 * 32 * 32, 9 * 32 + 32, 32 * 32 * 32 * 10)
    assert (pool.output_shape, pool.connections) == ((32, 16, 16), 32 * 16 * 16 * 4)
    # The seed wrote 16⁴ for this BatchNorm row; one input per output gives 32·16·16.
    assert (norm.weights, norm.connections) == (64, 32 * 16 * 16)


def _brute_force_transposed(module: nn.ConvTranspose2d, height: int, width: int) -> int:
    """Per output, the (input, tap) pairs that contribute, found by running the layer itself:
    with every input and every weight equal to 1, an output's value counts its contributions."""
    ones = torch.ones(1, 1, height, width)
    kernel = torch.ones(1, 1, *module.kernel_size)
    taps = F.conv_transpose2d(
        ones,
        kernel,
        stride=module.stride,
        padding=module.padding,
        output_padding=module.output_padding,
        dilation=module.dilation,
    )
    bias = taps[0, 0].numel() if module.bias is not None else 0
    return module.out_channels * (module.in_channels * int(taps.sum()) + bias)


@pytest.mark.parametrize("kernel", [3, 4, 5])
@pytest.mark.parametrize("height, width", [(32, 32), (36, 52)])
def test_transposed_convolutions_count_only_contributing_inputs(kernel, height, width):
    model = create_model("ConvTransposeNet", kernel=kernel, num_filters=8)
    table = layer_table(model, height, width)
    shapes = {r.name: r.output_shape for r in table.rows}
    assert shapes["final"] == (24, height, width), "Question B.4: output size equals input size"
    transposed = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    rows = [r for r in table.rows if r.kind.startswith("ConvTranspose2d")]
    inputs = [(height // 4, width // 4), (height // 2, width // 2)]
    for module, row, (h, w) in zip(transposed, rows, inputs, strict=True):
        assert row.connections == _brute_force_transposed(module, h, w)
        # Fewer than the k²·C_in per output a dense count would give: the stride's zeros do not count.
        assert row.connections < row.outputs * (kernel**2 * module.in_channels + 1)


def test_unet_sees_its_skip_connections():
    table = layer_table(create_model("UNet"), 32, 32)
    final = table.rows[-1]
    assert final.kind == "Conv2d 3×3, 25→24"  # cat(input, fourth block) = NIC + NC channels
    assert final.connections == 24 * 32 * 32 * (9 * 25 + 1)
    assert table.weights == sum(p.numel() for p in create_model("UNet").parameters())


def test_training_mode_and_statistics_are_left_alone():
    model = create_model("PoolUpsampleNet").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer_table(model, 32, 32)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())


def test_unknown_layer_type_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1))
    with pytest.raises(TypeError, match="AdaptiveAvgPool2d"):
        layer_table(model, 8, 8)
