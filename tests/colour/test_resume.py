"""Colour training saves checkpoints and resumes from them to exactly the uninterrupted run."""

import pytest
import torch

from colorseg.colour.recipes import get_recipe
from colorseg.colour.train import train_colour_net
from colorseg.training import Checkpointing, ResumeError


class Stop(Exception):
    """Stands in for a kill after an epoch."""


def _data():
    generator = torch.Generator().manual_seed(0)
    grey = torch.rand(40, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 24, (40, 8, 8), generator=generator)
    return (grey, labels), (grey[:10], labels[:10])


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    train, val = _data()
    recipe = get_recipe("default", "UNet", epochs=3, batch_size=10, num_filters=4)
    cpu = torch.device("cpu")
    whole, history = train_colour_net("UNet", recipe, train, val, cpu, 24)

    def stop_after_two(epoch, row, model):
        if row["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train_colour_net(
            "UNet", recipe, train, val, cpu, 24, hooks=[stop_after_two], checkpointing=Checkpointing(tmp_path)
        )
    assert (tmp_path / "colour_default_UNet").is_dir()
    resumed, resumed_history = train_colour_net(
        "UNet", recipe, train, val, cpu, 24, checkpointing=Checkpointing(tmp_path, resume=True)
    )

    assert [row["epoch"] for row in resumed_history] == [1, 2, 3]
    assert [row["val_loss"] for row in resumed_history] == [row["val_loss"] for row in history]
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_another_recipe_refuses_the_checkpoint(tmp_path):
    train, val = _data()
    recipe = get_recipe("default", "UNet", epochs=2, batch_size=10, num_filters=4)

    def stop(epoch, row, model):
        raise Stop

    with pytest.raises(Stop):
        train_colour_net(
            "UNet", recipe, train, val, torch.device("cpu"), 24, hooks=[stop], checkpointing=Checkpointing(tmp_path)
        )
    other = get_recipe("default", "UNet", epochs=2, batch_size=20, num_filters=4)
    with pytest.raises(ResumeError, match="another recipe"):
        train_colour_net(
            "UNet", other, train, val, torch.device("cpu"), 24, checkpointing=Checkpointing(tmp_path, resume=True)
        )
