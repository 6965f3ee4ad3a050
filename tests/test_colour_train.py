import json

import pytest
import torch

from colorseg.colour_train import RECIPES, evaluate, fit, get_recipe
from colorseg.palette import fit_palette, label_images
from colorseg.cifar import to_grey
from conftest import synthetic_horses


def tiny_data(count, seed, palette):
    rgb = torch.from_numpy(synthetic_horses(count, seed)).permute(0, 3, 1, 2).contiguous()
    return to_grey(rgb), label_images(rgb, palette)


def test_assignment_recipe_is_the_original():
    recipe = RECIPES["assignment"]
    assert (recipe.lr, recipe.batch_size, recipe.epochs, recipe.num_filters, recipe.kernel, recipe.seed) == (1e-3, 100, 25, 32, 3, 0)
    assert recipe.schedule == "constant" and not recipe.hflip and not recipe.shuffle


def test_unknown_recipe_lists_known_ones():
    with pytest.raises(KeyError, match="assignment"):
        get_recipe("fancy")


@pytest.mark.parametrize("recipe_name", ["assignment", "default"])
def test_short_training_lowers_the_loss_and_repeats(recipe_name):
    palette = fit_palette(torch.from_numpy(synthetic_horses(16, 0)).permute(0, 3, 1, 2), num_colours=8)
    train, val = tiny_data(64, 0, palette), tiny_data(16, 1, palette)
    recipe = get_recipe(recipe_name, epochs=12, batch_size=16, num_filters=8)
    model, history = fit("ConvTransposeNet", recipe, train, val, torch.device("cpu"), num_colours=8)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    _, again = fit("ConvTransposeNet", recipe, train, val, torch.device("cpu"), num_colours=8)
    assert [row["val_loss"] for row in again] == [row["val_loss"] for row in history]


def test_evaluate_counts_pixels_exactly():
    class Constant(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 3, x.shape[2], x.shape[3])
            logits[:, 1] = 10.0
            return logits

    labels = torch.tensor([[[1, 1], [0, 2]]])
    metrics = evaluate(Constant(), torch.zeros(1, 1, 2, 2), labels)
    assert metrics["accuracy"] == pytest.approx(0.5)
    expected = torch.nn.functional.cross_entropy(Constant()(torch.zeros(1, 1, 2, 2)), labels).item()
    assert metrics["loss"] == pytest.approx(expected)


def test_per_net_overrides_apply_before_explicit_ones():
    assert get_recipe("default", "PoolUpsampleNet").batch_size == 16
    assert get_recipe("default", "UNet").batch_size == RECIPES["default"].batch_size
    assert get_recipe("default", "PoolUpsampleNet", batch_size=64).batch_size == 64
    assert get_recipe("assignment", "PoolUpsampleNet") == RECIPES["assignment"]
