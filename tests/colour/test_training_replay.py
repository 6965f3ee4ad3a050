"""Colour training replays: a tiny colour run writes one per net on the CIFAR-sized example photos
(their colours and palette target once, the net's colourization every epoch), and recording it
does not change training."""

import json

import torch

from colorseg.cli import train as train_cli
from colorseg.colour.models import COLOUR_MODEL_NAMES
from colorseg.colour.recipes import get_recipe
from colorseg.colour.train import train_colour_net
from colorseg.colour.training_replay import ColourReplay, example_photos, replay_stem
from colorseg.replay import load_replay


def test_a_colour_run_writes_a_replay_per_net(tmp_path, image_folder_dump):
    reports = tmp_path / "reports"
    assert (
        train_cli.main(
            [
                "--only",
                "colour",
                "--colour-data",
                str(image_folder_dump),
                "--colour-epochs",
                "2",
                "--colour-batch-size",
                "20",
                "--weights-dir",
                str(tmp_path / "weights"),
                "--report-dir",
                str(reports),
                "--device",
                "cpu",
                "--checkpoint-dir",
                str(tmp_path / "checkpoints"),
            ]
        )
        == 0
    )
    report = json.loads((reports / "training_report.json").read_text())["colour_default"]
    names, photos = example_photos()
    assert len(names) == 9 and photos.shape == (9, 3, 32, 32)  # the farm animals at CIFAR's size
    for name in COLOUR_MODEL_NAMES:
        replay = load_replay(reports, replay_stem(name))
        assert replay.kind == "colour" and replay.names == names and replay.tile == (32, 32)
        assert replay.key_epochs == {"original": [0], "target": [0], "argmax": [1, 2]}  # the net: one row per epoch
        assert (replay.frame("original", 0) == photos.permute(2, 0, 3, 1).reshape(32, -1, 3).numpy()).all()
        assert replay.frame("argmax", 2).shape == (32, 32 * len(names), 3)
        assert set(replay.losses[1]["metrics"]) == {"train_loss", "val_loss", "val_accuracy"}
        metrics = report["models"][name]["metrics"]
        assert 0 < metrics["replay_seconds"] < metrics["train_seconds"]


def test_recording_a_replay_leaves_training_unchanged(image_folder_dump):
    generator = torch.Generator().manual_seed(0)
    grey = torch.rand(30, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 24, (30, 8, 8), generator=generator)
    palette = torch.rand(24, 3, generator=generator)
    recipe = get_recipe("default", "UNet", epochs=2, batch_size=10, num_filters=4)
    cpu = torch.device("cpu")
    plain, _ = train_colour_net("UNet", recipe, (grey, labels), (grey[:10], labels[:10]), cpu, 24)
    photos = (grey[:4].repeat(1, 3, 1, 1) * 255).to(torch.uint8)
    replay = ColourReplay("UNet", ["a", "b", "c", "d"], photos, palette, cpu)
    recorded, _ = train_colour_net("UNet", recipe, (grey, labels), (grey[:10], labels[:10]), cpu, 24, hooks=[replay])
    assert replay.recorder.frames["argmax"].keys() == {1, 2}
    for key, value in plain.state_dict().items():
        assert torch.equal(value, recorded.state_dict()[key]), key
    assert recorded.training == plain.training  # the mode it found is restored
