"""The checkerboard of transposed convolutions (Odena et al., "Deconvolution and Checkerboard
Artifacts", Distill 2016): flat and ramp inputs through a net, and how much of its output's energy
sits at the stride-2 period that transposed convolutions leave and upsampling does not."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colorseg.colour.explain import _evaluating, colourmap


def probe_inputs(size: int = 32) -> dict[str, torch.Tensor]:
    """A flat mid-grey and a smooth diagonal ramp, [1, 1, size, size]: inputs with no
    structure at the pixel scale, so any pixel-scale pattern in the output is the net's own."""
    ramp = torch.linspace(0, 1, size)
    return {"flat": torch.full((1, 1, size, size), 0.5), "ramp": ((ramp[:, None] + ramp[None, :]) / 2)[None, None]}


def stride2_energy(logits: torch.Tensor, border: int = 4) -> float:
    """Share of an output's spatial variation that alternates pixel by pixel, [C, H, W] -> [0, 1].

    The energy at the Nyquist frequencies (the (-1)^y, (-1)^x and (-1)^(x+y) components,
    exactly the period-2 pattern of a stride-2 transposed conv's uneven kernel overlap,
    Odena et al. 2016) over all the energy left after removing each channel's mean. A share,
    not an absolute energy, so it needs no calibration to the weights' scale. ``border``
    pixels are cut off: zero padding makes edges vary in every net, at no particular period.
    """
    inner = logits.detach().float().cpu()[:, border : logits.shape[1] - border, border : logits.shape[2] - border]
    inner = inner - inner.mean(dim=(1, 2), keepdim=True)
    sign_y = (-1.0) ** torch.arange(inner.shape[1], dtype=torch.float32)[:, None]
    sign_x = (-1.0) ** torch.arange(inner.shape[2], dtype=torch.float32)[None, :]
    nyquist = sum((inner * sign).mean(dim=(1, 2)).square().sum() for sign in (sign_y, sign_x, sign_y * sign_x))
    total = inner.square().mean(dim=(1, 2)).sum()
    return float(nyquist / total) if total > 0 else 0.0


def _high_pass(values: torch.Tensor) -> torch.Tensor:
    """|x - blur(x)| of a map [H, W] with a 3x3 box blur; replicated edges add no false edge."""
    padded = F.pad(values[None, None], (1, 1, 1, 1), mode="replicate")
    return (values - F.avg_pool2d(padded, 3, stride=1)[0, 0]).abs()


@torch.inference_mode()
def checkerboard_probe(model: nn.Module, size: int = 32, scale: int = 8) -> dict[str, np.ndarray]:
    """Pictures that expose checkerboard artefacts, uint8 [size*scale, size*scale, 3] each.

    For the flat and the ramp input: ``<input>_max_logit``, the output's largest logit per
    pixel (what decides the argmax colour), and ``<input>_residual``, its high-pass residual
    |x - blur(x)| magnified, where a transposed conv's period-2 pattern shows as a regular
    grid and upsampling-based nets show only their borders. Each map is scaled between its
    minimum and 99th percentile, so that one extreme corner pixel does not dim the rest.
    """
    pictures = {}
    with _evaluating(model):
        parameter = next(model.parameters())
        for name, image in probe_inputs(size).items():
            peak = model(image.to(parameter)).float()[0].amax(dim=0).cpu()  # [size, size]
            for kind, values in (("max_logit", peak), ("residual", _high_pass(peak))):
                low, span = values.min(), values.quantile(0.99) - values.min()
                normalised = ((values - low) / span if span > 0 else torch.zeros_like(values)).clamp(0, 1).numpy()
                pictures[f"{name}_{kind}"] = colourmap(normalised.repeat(scale, 0).repeat(scale, 1))
    return pictures


@torch.inference_mode()
def checkerboard_share(model: nn.Module, size: int = 32) -> float:
    """:func:`stride2_energy` of ``model``'s logits for the flat grey, in eval mode: the share of its
    output's variation that alternates pixel by pixel (a transposed conv's checkerboard)."""
    with _evaluating(model):
        parameter = next(model.parameters())
        return stride2_energy(model(probe_inputs(size)["flat"].to(parameter)).float()[0])
