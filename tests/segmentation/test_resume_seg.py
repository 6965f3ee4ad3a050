"""Segmentation training through train_all.py resumes to exactly the uninterrupted run:
interrupted after the body's first epoch (or a head's), ``--resume`` gives bitwise the same
body and heads, for the fine-tuned ImageNet body and the scratch one; checkpoints live in
--checkpoint-dir and are gone once the weights are written."""

import pytest
import torch
from safetensors.torch import load_file
from seg_fixtures import fake_imagenet_weights, make_flower_labels, make_weizmann

from colorseg.cli import train as train_cli
from colorseg.segmentation import heads as seg_heads
from colorseg.segmentation import train as seg_train
from colorseg.training import loop as training

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", autouse=True)
def imagenet_package(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake_imagenet_weights(tmp_path_factory.mktemp("package"), monkeypatch)
        yield


@pytest.fixture(scope="module", params=["imagenet", "scratch"])
def sources(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("seg_sources")
    folders = [f"flowers={make_flower_labels(root / 'flowers')}", f"horses={make_weizmann(root / 'horses')}"]
    return ["--seg-source", request.param, "--seg-data", *folders]


def _train(sources, out, *extra) -> int:
    return train_cli.main(
        [
            "--only",
            "segmentation",
            *sources,
            "--seg-image-size",
            "32",
            "--seg-epochs",
            "3",
            "--seg-views",
            "3",
            "--seg-samples-per-source",
            "4",
            "--seg-source-samples",
            "none",
            "--seg-batch-size",
            "4",
            "--seg-eval-every",
            "2",
            "--threads",
            "1",
            "--seg-head-recipe",
            "assignment",
            "--weights-dir",
            str(out / "weights"),
            "--report-dir",
            str(out / "reports"),
            "--checkpoint-dir",
            str(out / "checkpoints"),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def uninterrupted(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert _train(sources, out) == 0
    return out


def _stop_saving(monkeypatch, save_then_stop) -> None:
    """Every stage saves its checkpoints through training.fit's save_progress."""
    monkeypatch.setattr(training, "save_progress", save_then_stop)


def _weights(folder):
    return {path.name: load_file(str(path)) for path in sorted((folder / "weights").glob("*.safetensors"))}


@pytest.mark.parametrize("stop_stage", [seg_train.BODY_STAGE, seg_heads.head_stage("flowers", "soft_iou")])
def test_interrupted_then_resumed_equals_uninterrupted(sources, uninterrupted, stop_stage, tmp_path, monkeypatch):
    saved = training.save_progress

    def save_then_stop(checkpointing, stage, ctx, epoch, *args, **kwargs):
        saved(checkpointing, stage, ctx, epoch, *args, **kwargs)
        if stage == stop_stage and epoch == 1:
            raise KeyboardInterrupt  # as Ctrl-C (or a kill) right after the checkpoint

    _stop_saving(monkeypatch, save_then_stop)
    assert _train(sources, tmp_path) == 130
    assert (tmp_path / "checkpoints" / stop_stage / "checkpoint.json").is_file()
    assert not (tmp_path / "weights").exists()  # nothing written by the interrupted run
    _stop_saving(monkeypatch, saved)

    assert _train(sources, tmp_path, "--resume") == 0
    expected, resumed = _weights(uninterrupted), _weights(tmp_path)
    assert list(resumed) == list(expected) and len(expected) == 1 + 3 * 2  # body + (objects, flowers, horses) x 2
    for name, tensors in expected.items():
        for key, value in tensors.items():
            assert torch.equal(resumed[name][key], value), f"{name}:{key}"
    assert not any((tmp_path / "checkpoints").iterdir())  # spent checkpoints are removed


def test_a_checkpoint_of_another_recipe_is_refused(sources, tmp_path, monkeypatch):
    saved = training.save_progress

    def save_then_stop(checkpointing, stage, ctx, epoch, *args, **kwargs):
        saved(checkpointing, stage, ctx, epoch, *args, **kwargs)
        raise KeyboardInterrupt

    _stop_saving(monkeypatch, save_then_stop)
    assert _train(sources, tmp_path) == 130
    _stop_saving(monkeypatch, saved)
    assert _train(sources, tmp_path, "--resume", "--seg-lr", "0.001") == 2  # "another recipe", one line
