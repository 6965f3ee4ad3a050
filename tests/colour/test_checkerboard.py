"""The checkerboard probe: transposed convolutions leave a stride-2 pattern, upsampling does not."""

import numpy as np
import pytest
import torch

from colorseg.colour import checkerboard
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.registry import create_model


def _net(name: str, seed: int = 0, num_filters: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, num_filters=num_filters)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transposed_convs_leave_a_checkerboard_upsampling_does_not(seed):
    # Measured on freshly initialised nets, eval mode: ConvTransposeNet's output on a flat
    # input puts 0.6-0.95 of its (border-free) spatial variation at the alternating-pixel
    # frequencies, PoolUpsampleNet's 0.007-0.02 (nearest upsampling of a constant map is
    # constant; its variation comes from zero padding and has no period 2). The absolute
    # energies differ by 50-800x, but depend on the weights' scale; the share does not.
    flat = checkerboard.probe_inputs(32)["flat"]
    with torch.inference_mode():
        shares = {name: checkerboard.stride2_energy(_net(name, seed, 8).eval()(flat)[0]) for name in COLOUR_MODEL_NAMES}
    assert shares["ConvTransposeNet"] > 0.4 and shares["UNet"] > 0.4
    assert shares["PoolUpsampleNet"] < 0.05
    assert shares["ConvTransposeNet"] > 10 * shares["PoolUpsampleNet"]


def test_stride2_energy_of_known_patterns():
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    assert checkerboard.stride2_energy(((-1) ** (x + y))[None]) == pytest.approx(1)
    # A ramp of n samples has a small alternating component, 3 / (n^2 - 1) of its variance
    # (its ends do not match): 0.005 for the 24 pixels inside the 4-pixel border.
    assert checkerboard.stride2_energy((x / 32)[None]) == pytest.approx(3 / (24**2 - 1), rel=1e-3)
    assert checkerboard.stride2_energy(((-1) ** x + x / 32)[None]) > 0.9
    assert checkerboard.stride2_energy(torch.ones(2, 16, 16)) == 0.0


def test_checkerboard_probe_pictures():
    pictures = checkerboard.checkerboard_probe(_net("ConvTransposeNet"), size=16, scale=4)
    assert set(pictures) == {"flat_max_logit", "flat_residual", "ramp_max_logit", "ramp_residual"}
    assert all(p.shape == (64, 64, 3) and p.dtype == np.uint8 for p in pictures.values())


def test_checkerboard_share_of_every_net_in_eval_mode():
    """The app probes all three nets with this: UNet upsamples with transposed convs too."""
    nets = {name: _net(name, 0, 8).train() for name in COLOUR_MODEL_NAMES}
    shares = {name: checkerboard.checkerboard_share(net) for name, net in nets.items()}
    assert all(0 <= share <= 1 for share in shares.values())
    assert shares["UNet"] > 0.4 and shares["ConvTransposeNet"] > 10 * shares["PoolUpsampleNet"]
    assert all(net.training for net in nets.values()), "the nets' mode is restored"
