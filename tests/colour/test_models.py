import pytest
import torch

from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.registry import create_model, list_models


@pytest.mark.parametrize("name", COLOUR_MODEL_NAMES)
@pytest.mark.parametrize("kernel", [3, 4, 5])
@pytest.mark.parametrize("size", [32, 64])
def test_output_keeps_input_size(name, kernel, size):
    model = create_model(name, kernel=kernel, num_filters=8, num_colours=24)
    out = model(torch.rand(2, 1, size, size))
    assert out.shape == (2, 24, size, size)


@pytest.mark.parametrize("name", COLOUR_MODEL_NAMES)
def test_non_square_inputs_keep_their_size(name):
    model = create_model(name, num_filters=8)
    assert model(torch.rand(1, 1, 48, 80)).shape == (1, 24, 48, 80)


@pytest.mark.parametrize("nf, nc, nic", [(32, 24, 1), (8, 10, 1), (16, 24, 3)])
def test_pool_upsample_parameter_count_matches_closed_form(nf, nc, nic):
    model = create_model("PoolUpsampleNet", num_filters=nf, num_colours=nc, num_in_channels=nic)
    closed_form = 36 * nf**2 + 9 * nc**2 + 9 * nic * nf + 9 * nf * nc + 12 * nf + 4 * nc
    assert sum(p.numel() for p in model.parameters()) == closed_form


def test_unet_skip_connection_channels():
    # cat(first block, third block) -> 2NF into the fourth; cat(input, fourth) -> NIC + NC.
    model = create_model("UNet", num_filters=8, num_colours=24, num_in_channels=1)
    assert model.up2[0].in_channels == 2 * 8
    assert model.final.in_channels == 1 + 24


@pytest.mark.parametrize("kernel", [3, 4, 5])
@pytest.mark.parametrize("channels_last", [False, True])
def test_unet_final_conv_equals_conv_of_the_concatenation(kernel, channels_last):
    # UNet's final conv takes grey and x4 apart and sums per-part convolutions: same values
    # and same gradients as one convolution over the concatenation written out.
    torch.manual_seed(0)
    model = create_model("UNet", kernel=kernel, num_filters=8, num_colours=24)
    grey = torch.rand(3, 1, 32, 32)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        grey = grey.contiguous(memory_format=torch.channels_last)

    def explicit(images):
        x1 = model.down1(images)
        x4 = model.up2(torch.cat([x1, model.up1(model.down2(x1))], dim=1))
        return model.final(torch.cat([images, x4], dim=1))

    expected = explicit(grey)
    expected.square().sum().backward()
    expected_grad = model.final.weight.grad.clone()
    model.zero_grad()
    actual = model(grey)
    actual.square().sum().backward()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.final.weight.grad, expected_grad, rtol=1e-4, atol=1e-4)


def test_unknown_model_lists_known_names():
    with pytest.raises(KeyError) as error:
        create_model("ResNet9000")
    for name in COLOUR_MODEL_NAMES:
        assert name in str(error.value)
    assert set(COLOUR_MODEL_NAMES) <= set(list_models())
