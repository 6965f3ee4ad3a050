import json
import os
import stat

import pytest
import torch
from tiny_training import EPOCHS, make_data, make_run, train_epoch

from colorseg import files
from colorseg.training import checkpoint
from colorseg.training.checkpoint import CheckpointError, load_checkpoint, remove_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(run, epochs, data):
    for _ in range(epochs):
        train_epoch(*run, *data)


def _save(directory, run, epoch, **kwargs):
    model, optimizer, scheduler, generators = run
    return save_checkpoint(
        directory,
        "tiny",
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        epoch=epoch,
        generators=generators,
        **kwargs,
    )


def _load(directory, run):
    model, optimizer, scheduler, generators = run
    return load_checkpoint(
        directory, "tiny", model=model, optimizer=optimizer, scheduler=scheduler, generators=generators
    )


def _assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_is_bit_for_bit(tmp_path):
    data = make_data()
    straight = make_run()
    _train(straight, EPOCHS, data)

    first = make_run()
    _train(first, 2, data)
    _save(tmp_path, first, 2, extra={"history": [{"epoch": 1, "loss": 0.5}], "best": torch.arange(3)})

    resumed = make_run(seed=7)  # different initialisation and generators: all must be overwritten
    torch.manual_seed(999)  # so must torch's global generator (dropout)
    state = _load(tmp_path, resumed)
    assert state.epoch == 2
    assert state.extra["history"] == [{"epoch": 1, "loss": 0.5}]
    assert torch.equal(state.extra["best"], torch.arange(3))
    _train(resumed, EPOCHS - state.epoch, data)

    _assert_same_state(straight[0].state_dict(), resumed[0].state_dict())
    assert straight[2].state_dict() == resumed[2].state_dict()
    for name in ("shuffle", "augment"):
        assert torch.equal(straight[3][name].get_state(), resumed[3][name].get_state())
    opt_a, opt_b = straight[1].state_dict(), resumed[1].state_dict()
    assert opt_a["param_groups"] == opt_b["param_groups"]
    for index in opt_a["state"]:
        _assert_same_state(opt_a["state"][index], opt_b["state"][index])


def test_layout_keys_and_modes(tmp_path):
    run = make_run()
    _train(run, 1, make_data())
    path = _save(tmp_path, run, 1)
    body = json.loads(path.read_text())
    assert body["epoch"] == 1 and body["stage"] == "tiny"
    from safetensors import safe_open

    with safe_open(str(path.parent / body["tensors_file"]), "pt") as handle:
        keys = set(handle.keys())
    assert {"optim.state.0.exp_avg", "optim.state.0.step", "model.1.running_mean", "rng.torch"} <= keys
    assert {"rng.generators.shuffle", "rng.generators.augment"} <= keys
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([body["tensors_file"], "checkpoint.json"])
    for file in path.parent.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file


def test_absent_checkpoint_is_none(tmp_path):
    assert _load(tmp_path, make_run()) is None


def _interrupt_on_call(monkeypatch, which: int):
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == which:
            raise KeyboardInterrupt("killed")
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)  # the one atomic write checkpoints go through


@pytest.mark.parametrize("which", [1, 2])  # while publishing the tensors, while publishing the JSON
def test_interrupted_save_keeps_previous(tmp_path, monkeypatch, which):
    data = make_data()
    run = make_run()
    _train(run, 1, data)
    _save(tmp_path, run, 1)
    expected = {k: v.clone() for k, v in run[0].state_dict().items()}
    _train(run, 1, data)
    with monkeypatch.context() as patch:
        _interrupt_on_call(patch, which)
        with pytest.raises(KeyboardInterrupt):
            _save(tmp_path, run, 2)
    fresh = make_run(seed=3)
    assert _load(tmp_path, fresh).epoch == 1
    _assert_same_state(expected, fresh[0].state_dict())
    assert not list((tmp_path / "tiny").glob(".*.tmp"))
    # The next save succeeds and leaves one tensor file, whatever the interruption left.
    _save(tmp_path, run, 2)
    assert len(list((tmp_path / "tiny").glob("state-*.safetensors"))) == 1
    assert _load(tmp_path, make_run()).epoch == 2


def test_damaged_tensors_name_the_file(tmp_path):
    run = make_run()
    path = _save(tmp_path, run, 0)
    tensors = path.parent / json.loads(path.read_text())["tensors_file"]
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"checkpoint\.json.*sha256.*without --resume"):
        _load(tmp_path, make_run())


def test_damaged_json_and_mismatched_model(tmp_path):
    run = make_run()
    path = _save(tmp_path, run, 0)
    other = list(make_run())
    other[0] = torch.nn.Sequential(torch.nn.Conv2d(1, 5, 3))
    other[1] = torch.optim.AdamW(other[0].parameters())
    other[2] = torch.optim.lr_scheduler.OneCycleLR(other[1], max_lr=1e-2, total_steps=10)
    with pytest.raises(CheckpointError, match=str(path)):
        _load(tmp_path, other)
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="delete .*tiny"):
        _load(tmp_path, make_run())


def test_scheduler_mismatch_is_an_error(tmp_path):
    model, optimizer, _, generators = make_run()
    save_checkpoint(tmp_path, "tiny", model=model, optimizer=optimizer, epoch=0, generators=generators)
    with pytest.raises(CheckpointError, match="without a scheduler"):
        _load(tmp_path, make_run())


def test_remove_checkpoint(tmp_path):
    _save(tmp_path, make_run(), 0)
    remove_checkpoint(tmp_path, "tiny")
    assert not (tmp_path / "tiny").exists()
    assert _load(tmp_path, make_run()) is None
    remove_checkpoint(tmp_path, "tiny")  # absent: nothing to do


def test_stage_must_be_a_plain_name(tmp_path):
    with pytest.raises(ValueError):
        checkpoint.checkpoint_dir(tmp_path, "../escape")
