"""colorseg.colour.scoring: a photo's own palette colours as the target, and each net's loss and
pixel accuracy against them, computed as training computes them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from support import make_colour_weights, photo

from colorseg.colour import inference as c
from colorseg.colour.data import to_grey
from colorseg.colour.palette import label_images
from colorseg.colour.scoring import ColourScore, palette_rgb, palette_target, score
from colorseg.colour.train import colour_loss, evaluate_colour_net


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return c.load_colourizers(make_colour_weights(tmp_path_factory.mktemp("weights")))


def _chw(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]


def test_at_its_own_size_the_target_is_exactly_the_training_labels(models):
    image = photo(32, 32)
    target = palette_target(image, models.palette, (32, 32))
    assert torch.equal(target.labels, label_images(_chw(image), models.palette)[0])
    assert target.labels.dtype == torch.int64 and target.rgb.shape == (32, 32, 3) and target.rgb.dtype == np.uint8
    assert np.array_equal(target.rgb, palette_rgb(models.palette)[target.labels.numpy()])


def test_a_larger_photo_is_labelled_at_the_working_shape(models):
    image = photo(64, 48)
    target = palette_target(image, models.palette, (24, 32))
    small = np.asarray(Image.fromarray(image).resize((32, 24), Image.Resampling.BILINEAR))
    assert target.labels.shape == (24, 32)
    assert torch.equal(target.labels, label_images(_chw(small), models.palette)[0])
    with pytest.raises(ValueError, match="uint8"):
        palette_target(image.astype(np.float32), models.palette, (24, 32))


def test_score_is_the_training_loss_and_accuracy():
    labels = torch.tensor([[0, 1], [2, 3]])
    sure = torch.nn.functional.one_hot(labels, 24).permute(2, 0, 1)[None].float() * 50
    assert score(sure, labels) == ColourScore(loss=pytest.approx(0, abs=1e-6), accuracy=1.0)
    even = torch.zeros(1, 24, 2, 2)
    assert score(even, labels).loss == pytest.approx(math.log(24))
    logits = torch.randn(1, 24, 2, 2)
    right = (logits.argmax(dim=1)[0] == labels).float().mean().item()
    assert score(logits, labels) == ColourScore(pytest.approx(colour_loss(logits, labels[None]).item()), right)
    with pytest.raises(ValueError, match="do not match"):
        score(logits, labels[:1])


def test_colourize_scores_each_net_as_validation_does(models):
    """A 32x32 photo at working size 32 is what validation sees: the same grey, the same labels."""
    image = photo(32, 32, seed=3)
    grey = c.greyscale(image)
    target = palette_target(image, models.palette, c.working_shape(32, 32, 32))
    results = c.colourize(models, grey, working_size=32, labels=target.labels)
    for name, result in results.items():
        expected = evaluate_colour_net(models.nets[name], to_grey(_chw(image)), target.labels[None])
        assert result.score.loss == pytest.approx(expected["loss"], rel=1e-5)
        assert result.score.accuracy == pytest.approx(expected["accuracy"])
    assert all(r.score is None for r in c.colourize(models, grey, working_size=32).values())
    with pytest.raises(ValueError, match="working shape"):
        c.colourize(models, grey, working_size=32, labels=target.labels[:16])
