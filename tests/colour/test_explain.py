"""colorseg.colour.explain: activations match the A.3 table, one pixel's distribution matches
colourize, and transposed convolutions leave a measurable checkerboard."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import make_colour_weights

from colorseg.colour import explain as e
from colorseg.colour import inference as c
from colorseg.colour.layer_stats import layer_table
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.registry import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(name: str, seed: int = 0, num_filters: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, num_filters=num_filters)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return c.load_colourizers(make_colour_weights(tmp_path_factory.mktemp("weights")))


@pytest.mark.parametrize("name", COLOUR_MODEL_NAMES)
@pytest.mark.parametrize("height, width", [(32, 32), (24, 40)])
def test_activations_are_the_layer_tables_rows(name, height, width):
    net = _net(name).train()
    with torch.inference_mode():  # as the app's handlers call it
        activations = e.capture_activations(net, torch.rand(1, 1, height, width))
    table = layer_table(net, height, width)
    assert [a.name for a in activations] == [row.name for row in table.rows]
    assert [tuple(a.tensor.shape) for a in activations] == [row.output_shape for row in table.rows]
    assert [(a.outputs, a.weights, a.connections) for a in activations] == [
        (row.outputs, row.weights, row.connections) for row in table.rows
    ]
    assert net.training, "the caller's mode is restored"


def test_unet_skips_are_found_from_the_forward_pass():
    activations = e.capture_activations(_net("UNet"), torch.rand(1, 1, 32, 32))
    skips = {a.name: a.inputs_from for a in activations if a.consumes_skip}
    assert skips == {"up2.0": ("down1.1", "up1.1"), "final": ("input", "up2.1")}
    for name in ("PoolUpsampleNet", "ConvTransposeNet"):
        assert not any(a.consumes_skip for a in e.capture_activations(_net(name), torch.rand(1, 1, 16, 16)))


def test_channel_grid_tiles_each_channel_on_its_own_scale():
    activation = torch.zeros(5, 4, 4)
    activation[0, 0, 0] = 1000.0  # a huge channel must not flatten the others
    activation[1, 3, 3] = 0.001
    grid = e.channel_grid(activation, cell=8)  # scale 2: 8x8 tiles, 3 columns, 2 rows, 1 px gaps
    assert grid.shape == (2 * 8 + 1, 3 * 8 + 2, 3) and grid.dtype == np.uint8
    high, low = e.colourmap(np.array(1.0)), e.colourmap(np.array(0.0))
    assert (grid[0:2, 0:2] == high).all() and (grid[2, 2] == low).all()
    assert (grid[6:8, 15:17] == high).all(), "channel 1's maximum at its bottom-right corner"
    assert (grid[:, 8] == 255).all() and (grid[8] == 255).all(), "white gaps"
    assert (grid[9:17, 9:17] == low).all(), "a constant channel is drawn at the low end"
    # 32 of 40 channels in 6 x 6 tiles of 2x2 maps enlarged 24x (cell 48), 5 gaps each way.
    assert e.channel_grid(torch.rand(40, 2, 2), max_channels=32).shape[:2] == (6 * 48 + 5, 6 * 48 + 5)


@pytest.mark.parametrize("full, small", [((32, 32), (32, 32)), ((480, 640), (48, 64)), ((7, 9), (4, 8))])
def test_click_maps_to_the_working_pixel_under_it(full, small):
    assert e.working_pixel(0, 0, full, small) == (0, 0)
    assert e.working_pixel(full[0] - 1, full[1] - 1, full, small) == (small[0] - 1, small[1] - 1)
    if full == small:
        assert e.working_pixel(5, 7, full, small) == (5, 7)
    assert e.working_pixel(full[0] // 2, full[1] // 2, full, small) == (small[0] // 2, small[1] // 2)


@pytest.mark.parametrize("name", COLOUR_MODEL_NAMES)
def test_pixel_distribution_is_what_colourize_shows(models, name):
    rng = np.random.default_rng(0)
    grey = rng.random((32, 32), dtype=np.float32)
    small = e.working_grey(grey, 32)
    assert small.shape == (1, 1, 32, 32)
    net, palette = models.nets[name], models.palette
    with torch.inference_mode():
        logits = net(small)
        argmax_offset = c.decode_offset(logits, models.palette_offset, "argmax", 0.38)
    shown = c.colourize(models, grey, [name], 32, "annealed mean", 0.38)[name]
    for y, x in [(0, 0), (5, 17), (31, 31)]:
        dist = e.pixel_distribution(net, small, palette, y, x, temperature=0.38)
        assert dist.probs.shape == (24,) and dist.probs.sum() == pytest.approx(1, abs=1e-9)
        assert dist.annealed_probs.sum() == pytest.approx(1, abs=1e-6)
        assert dist.argmax == int(logits[0, :, y, x].argmax())
        assert torch.allclose(c.chroma_offset(palette[dist.argmax]), argmax_offset[0, :, y, x])
        assert np.array_equal(dist.argmax_colour, (palette[dist.argmax] * 255 + 0.5).to(torch.uint8).numpy())
        assert np.abs(dist.annealed_mean_colour.astype(int) - shown.rgb[y, x]).max() <= 1
        assert dist.confidence == pytest.approx(float(shown.confidence[y, x]), abs=1e-5)
    with pytest.raises(IndexError):
        e.pixel_distribution(net, small, palette, 32, 0)


def test_distribution_chart_is_a_picture(models):
    net = models.nets["UNet"]
    dist = e.pixel_distribution(net, torch.rand(1, 1, 8, 8), models.palette, 2, 3)
    chart = e.distribution_chart(dist, models.palette)
    assert chart.dtype == np.uint8 and chart.shape == (240, 600, 3)
    assert len(np.unique(chart.reshape(-1, 3), axis=0)) > 24, "bars in the palette's colours"
