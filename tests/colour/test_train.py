import pytest
import torch
from conftest import synthetic_horses

from colorseg.colour.data import to_grey
from colorseg.colour.palette import fit_palette, label_images
from colorseg.colour.recipes import RECIPES, get_recipe
from colorseg.colour.train import (
    colour_loss,
    distillation_loss,
    evaluate_colour_net,
    teacher_targets,
    train_colour_net,
)
from colorseg.registry import create_model


def tiny_data(count, seed, palette):
    rgb = torch.from_numpy(synthetic_horses(count, seed)).permute(0, 3, 1, 2).contiguous()
    return to_grey(rgb), label_images(rgb, palette)


def test_assignment_recipe_is_the_original():
    recipe = RECIPES["assignment"]
    assert (recipe.lr, recipe.batch_size, recipe.epochs, recipe.num_filters, recipe.kernel, recipe.seed) == (
        1e-3,
        100,
        25,
        32,
        3,
        0,
    )
    assert recipe.schedule == "constant" and not recipe.hflip and not recipe.shuffle


def test_unknown_recipe_lists_known_ones():
    with pytest.raises(KeyError, match="assignment"):
        get_recipe("fancy")


@pytest.mark.parametrize("recipe_name", ["assignment", "default"])
def test_short_training_lowers_the_loss_and_repeats(recipe_name):
    palette = fit_palette(torch.from_numpy(synthetic_horses(16, 0)).permute(0, 3, 1, 2), num_colours=8)
    train, val = tiny_data(64, 0, palette), tiny_data(16, 1, palette)
    recipe = get_recipe(recipe_name, epochs=12, batch_size=16, num_filters=8)
    model, history = train_colour_net("ConvTransposeNet", recipe, train, val, torch.device("cpu"), num_colours=8)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    _, again = train_colour_net("ConvTransposeNet", recipe, train, val, torch.device("cpu"), num_colours=8)
    assert [row["val_loss"] for row in again] == [row["val_loss"] for row in history]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_colour_loss_is_per_pixel_cross_entropy_in_either_layout(channels_last, reduction):
    # colour_loss reads the logits as [pixels, colours] rows; values and gradients must be
    # those of cross_entropy over the colour dimension.
    torch.manual_seed(0)
    logits, labels = torch.randn(3, 5, 4, 6), torch.randint(0, 5, (3, 4, 6))
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    ours, reference = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss = colour_loss(ours, labels, reduction=reduction)
    expected = torch.nn.functional.cross_entropy(reference, labels, reduction=reduction)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(ours.grad, reference.grad)


def test_evaluate_counts_pixels_exactly():
    class Constant(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 3, x.shape[2], x.shape[3])
            logits[:, 1] = 10.0
            return logits

    labels = torch.tensor([[[1, 1], [0, 2]]])
    metrics = evaluate_colour_net(Constant(), torch.zeros(1, 1, 2, 2), labels)
    assert metrics["accuracy"] == pytest.approx(0.5)
    expected = torch.nn.functional.cross_entropy(Constant()(torch.zeros(1, 1, 2, 2)), labels).item()
    assert metrics["loss"] == pytest.approx(expected)


def test_per_net_overrides_apply_before_explicit_ones():
    assert get_recipe("default", "PoolUpsampleNet").batch_size == 16
    assert get_recipe("default", "UNet").batch_size == RECIPES["default"].batch_size
    assert get_recipe("default", "PoolUpsampleNet", batch_size=64).batch_size == 64
    assert get_recipe("assignment", "PoolUpsampleNet") == RECIPES["assignment"]


def test_teacher_targets_answer_each_orientation_for_itself():
    torch.manual_seed(0)
    teacher = create_model("UNet", num_filters=4, num_colours=5).eval()
    grey = torch.rand(3, 1, 8, 12)
    plain, mirrored = teacher_targets(teacher, grey, batch_size=2)
    with torch.no_grad():
        assert torch.allclose(plain.float(), teacher(grey).softmax(1), atol=1e-3)
        assert torch.allclose(mirrored.float(), teacher(grey.flip(-1)).softmax(1), atol=1e-3)
    assert not torch.allclose(mirrored.float(), plain.float().flip(-1), atol=1e-3)  # the net is not mirror-symmetric


def test_distillation_loss_mixes_hard_and_soft_cross_entropy():
    logits, labels = torch.randn(2, 4, 3, 3), torch.randint(0, 4, (2, 3, 3))
    one_hot = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    hard = torch.nn.functional.cross_entropy(logits, labels)
    # Soft targets equal to the labels' one-hot give plain cross-entropy at every weight.
    assert distillation_loss(logits, labels, one_hot, 0.7) == pytest.approx(hard.item(), rel=1e-5)
    uniform = torch.full_like(one_hot, 0.25)
    soft = -(torch.log_softmax(logits, 1).mean(1)).mean()
    assert distillation_loss(logits, labels, uniform, 0.3) == pytest.approx(
        0.7 * hard.item() + 0.3 * soft.item(), rel=1e-5
    )


def test_distillation_pulls_the_student_towards_the_teacher():
    palette = fit_palette(torch.from_numpy(synthetic_horses(16, 0)).permute(0, 3, 1, 2), num_colours=6)
    train, val = tiny_data(48, 0, palette), tiny_data(16, 1, palette)
    torch.manual_seed(1)
    teacher = create_model("UNet", num_filters=4, num_colours=6).eval()  # untrained: its own, odd opinion

    def distance_to_teacher(weight):
        recipe = get_recipe("default", epochs=6, batch_size=16, num_filters=4, teacher="UNet", distill_weight=weight)
        student, history = train_colour_net(
            "ConvTransposeNet", recipe, train, val, torch.device("cpu"), num_colours=6, teacher=teacher
        )
        student.eval()
        with torch.no_grad():
            target = teacher(val[0]).softmax(1)
            return -(target * student(val[0]).log_softmax(1)).sum(1).mean().item(), history

    plain, _ = distance_to_teacher(0.0)
    distilled, history = distance_to_teacher(1.0)
    assert distilled < plain
    assert all("train_loss" in row for row in history)


def test_a_distilled_recipe_needs_its_teacher():
    palette = fit_palette(torch.from_numpy(synthetic_horses(8, 0)).permute(0, 3, 1, 2), num_colours=4)
    data = tiny_data(8, 0, palette)
    recipe = get_recipe("default", epochs=1, num_filters=4, teacher="UNet", distill_weight=0.5)
    with pytest.raises(ValueError, match="teacher"):
        train_colour_net("PoolUpsampleNet", recipe, data, data, torch.device("cpu"), num_colours=4)
