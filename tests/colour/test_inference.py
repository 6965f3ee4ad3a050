"""colorseg.colour.inference: loading, working resolution, decoding, full-resolution chroma transfer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from support import make_colour_weights, photo

from colorseg.colour import inference as c
from colorseg.colour.models import COLOUR_STEMS
from colorseg.colour.palette import PALETTE_STEM, save_palette
from colorseg.errors import WeightsError


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_colour_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def models(weights):
    return c.load_colourizers(weights)


def test_loads_palette_and_three_nets(models):
    assert list(models.nets) == ["PoolUpsampleNet", "ConvTransposeNet", "UNet"]
    assert models.problems == {}
    assert models.palette.shape == (24, 3) and models.palette_offset.shape == (24, 3)
    assert all(not net.training for net in models.nets.values())


def test_a_missing_net_is_reported_not_fatal(tmp_path):
    make_colour_weights(tmp_path, names=("UNet",))
    models = c.load_colourizers(tmp_path)
    assert list(models.nets) == ["UNet"]
    assert set(models.problems) == {"PoolUpsampleNet", "ConvTransposeNet"}
    assert all("python train_all.py" in why for why in models.problems.values())


def test_damaged_net_is_reported(tmp_path):
    make_colour_weights(tmp_path)
    (tmp_path / f"{COLOUR_STEMS['UNet']}.safetensors").write_bytes(b"garbage")
    models = c.load_colourizers(tmp_path)
    assert "UNet" not in models.nets and "damaged" in models.problems["UNet"]


def test_palette_of_another_size_is_a_problem(tmp_path):
    make_colour_weights(tmp_path)
    save_palette(torch.rand(10, 3), tmp_path, {})
    models = c.load_colourizers(tmp_path)
    assert models.nets == {} and "10" in models.problems["UNet"]


def test_missing_palette_raises(tmp_path):
    make_colour_weights(tmp_path)
    (tmp_path / f"{PALETTE_STEM}.json").unlink()
    with pytest.raises(WeightsError, match="train_all.py"):
        c.load_colourizers(tmp_path)


@pytest.mark.parametrize(
    "height, width, working, expected",
    [
        (512, 512, 128, (128, 128)),
        (400, 600, 128, (84, 128)),
        (32, 32, 128, (32, 32)),
        (1, 1, 128, (4, 4)),
        (30, 30, 128, (32, 32)),
        (4096, 8, 128, (128, 4)),
        (100, 1000, 64, (8, 64)),
    ],
)
def test_working_shape_keeps_aspect_in_multiples_of_four(height, width, working, expected):
    assert c.working_shape(height, width, working) == expected


def test_chroma_offset_has_no_luma_and_grey_has_none():
    rgb = torch.rand(100, 3)
    offset = c.chroma_offset(rgb)
    luma = torch.tensor([0.299, 0.587, 0.114])
    assert torch.allclose(offset @ luma, torch.zeros(100), atol=1e-6), "grey + offset keeps the grey's luma"
    assert torch.allclose(rgb - offset, (rgb @ luma)[:, None].expand(-1, 3), atol=1e-6)
    assert torch.allclose(c.chroma_offset(torch.full((5, 3), 0.3)), torch.zeros(5, 3), atol=1e-6)


def test_argmax_decoding_picks_the_palette_colour():
    palette_offset = torch.tensor([[0.1, -0.2, 0.05], [-0.3, 0.25, 0.1], [0.0, 0.0, 0.0]])
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1] = 5.0  # colour 1 wins everywhere
    offset = c.decode_offset(logits, palette_offset, "argmax", 1.0)
    assert torch.allclose(offset[0, :, 0, 0], palette_offset[1])
    annealed = c.decode_offset(logits, palette_offset, "annealed mean", 0.01)
    assert torch.allclose(annealed, offset, atol=1e-4), "T -> 0 tends to argmax"
    mean = c.decode_offset(torch.zeros(1, 3, 1, 1), palette_offset, "annealed mean", 1.0)
    assert torch.allclose(mean[0, :, 0, 0], palette_offset.mean(0)), "equal logits give the plain mean"
    with pytest.raises(ValueError, match="decoding"):
        c.decode_offset(logits, palette_offset, "median", 1.0)


def test_confidence_is_one_minus_normalised_entropy():
    uniform = c.confidence_of(torch.zeros(1, 24, 1, 1))
    sure = c.confidence_of(torch.tensor([100.0] + [0.0] * 23).reshape(1, 24, 1, 1))
    assert uniform.item() == pytest.approx(0.0, abs=1e-6) and sure.item() == pytest.approx(1.0, abs=1e-6)
    two = torch.full((1, 24, 1, 1), -1e4)
    two[0, :2] = 0  # two colours equally likely
    assert c.confidence_of(two).item() == pytest.approx(1 - math.log(2) / math.log(24), abs=1e-5)


@pytest.mark.parametrize("decoding", c.DECODINGS)
@pytest.mark.parametrize("height, width", [(48, 64), (37, 53), (1, 1), (300, 20)])
def test_full_resolution_output(models, decoding, height, width):
    grey = c.greyscale(photo(width, height))
    results = c.colourize(models, grey, decoding=decoding, working_size=32)
    assert list(results) == list(models.nets)
    for result in results.values():
        assert result.rgb.shape == (height, width, 3) and result.rgb.dtype == np.uint8
        assert result.confidence.shape == result.working_size[::-1], "confidence stays at the working resolution"
        assert 0 <= result.confidence.min() and result.confidence.max() <= 1
        assert all(side % 4 == 0 for side in result.working_size)


def test_luminance_comes_from_the_full_resolution_input(models):
    """A grey palette has no chroma: the output must be the input grey, pixel for pixel."""
    grey = c.greyscale(photo(64, 48))
    greyed = c.ColourModels(models.palette, torch.zeros_like(models.palette_offset), models.nets, models.descriptions)
    result = c.colourize(greyed, grey, ["UNet"], working_size=32)["UNet"]
    expected = np.rint(grey * 255).astype(np.uint8)
    for channel in range(3):
        assert np.abs(result.rgb[..., channel].astype(int) - expected).max() <= 1


def test_detail_finer_than_the_working_size_is_kept(models):
    """A one-pixel checkerboard survives colourization at a 4x smaller working size."""
    grey = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32) * 0.6 + 0.2
    result = c.colourize(models, grey, ["PoolUpsampleNet"], working_size=16)["PoolUpsampleNet"]
    luma = result.rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(np.diff(luma, axis=1)).mean() > 60  # neighbours still differ by ~0.6 * 255


def test_unknown_net_and_decoding(models):
    grey = np.zeros((8, 8), np.float32)
    with pytest.raises(KeyError, match="no loaded colour net"):
        c.colourize(models, grey, ["ResNet"])
    with pytest.raises(ValueError, match="decoding"):
        c.colourize(models, grey, decoding="mode")
