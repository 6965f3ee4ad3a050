"""Training replays of segmentation on the example photos: one per task (a row per head epoch per
loss) and one of the ImageNet body's fine-tuning (a row per epoch)."""

import json

import pytest
from seg_fixtures import fake_imagenet_weights, make_flower_labels, make_weizmann

from colorseg.cli import train as train_cli
from colorseg.replay import load_replay
from colorseg.segmentation.training_replay import BODY_STEM, REFERENCE_KEY, REPLAY_PHOTOS, replay_stem

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_segmentation_run_writes_a_replay_per_task(tmp_path):
    sources = [f"flowers={make_flower_labels(tmp_path / 'flowers')}", f"horses={make_weizmann(tmp_path / 'horses')}"]
    reports = tmp_path / "reports"
    assert (
        train_cli.main(
            [
                "--only",
                "segmentation",
                "--seg-source",
                "scratch",
                "--seg-data",
                *sources,
                "--seg-image-size",
                "32",
                "--seg-epochs",
                "1",
                "--seg-samples-per-source",
                "4",
                "--seg-source-samples",
                "none",
                "--seg-batch-size",
                "4",
                "--threads",
                "1",
                "--seg-head-recipe",
                "assignment",
                "--weights-dir",
                str(tmp_path / "weights"),
                "--report-dir",
                str(reports),
                "--checkpoint-dir",
                str(tmp_path / "checkpoints"),
            ]
        )
        == 0
    )
    section = json.loads((reports / "training_report.json").read_text())["segmentation"]
    for task in ("objects", "flowers", "horses"):
        replay = load_replay(reports, replay_stem(task))
        assert replay.kind == "segmentation" and replay.tile == (32, 32)
        assert replay.names == list(REPLAY_PHOTOS)  # the farm-animal examples, never data-set images
        epochs = list(range(1, 11))  # the assignment's 10 head epochs
        assert replay.key_epochs == {"photo": [0], REFERENCE_KEY: [0], "cross_entropy": epochs, "soft_iou": epochs}
        assert set(replay.losses[10]) == {"cross_entropy", "soft_iou"}
        cost = section["replays"][task]
        assert 0 < cost["replay_seconds"] < cost["head_training_seconds"] or cost["head_training_seconds"] == 0


def test_the_imagenet_body_replays_its_fine_tuning(tmp_path, monkeypatch):
    fake_imagenet_weights(tmp_path / "package", monkeypatch)
    sources = [f"horses={make_weizmann(tmp_path / 'horses')}"]
    reports = tmp_path / "reports"
    assert (
        train_cli.main(
            [
                "--only",
                "segmentation",
                "--seg-data",
                *sources,
                "--seg-image-size",
                "32",
                "--seg-epochs",
                "2",
                "--seg-views",
                "2",
                "--seg-samples-per-source",
                "4",
                "--seg-batch-size",
                "4",
                "--threads",
                "1",
                "--weights-dir",
                str(tmp_path / "weights"),
                "--report-dir",
                str(reports),
                "--checkpoint-dir",
                str(tmp_path / "checkpoints"),
            ]
        )
        == 0
    )
    replay = load_replay(reports, BODY_STEM)
    assert replay.key_epochs == {"photo": [0], REFERENCE_KEY: [0], "mask": [1, 2]}
    assert set(replay.losses[2]["body"]) >= {"train_loss", "val_horses_iou"}
    assert (
        json.loads((reports / "training_report.json").read_text())["segmentation"]["replays"]["body"]["stem"]
        == BODY_STEM
    )
