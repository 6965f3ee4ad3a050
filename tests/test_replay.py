"""colorseg.replay: record, save, load back exactly; bad input and damaged files are refused."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
from PIL import Image

from colorseg.replay import ReplayError, ReplayRecorder, load_replay

NAMES = ["horse_0", "horse_1", "horse_2"]


def _images(seed: int, count: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 8, 6, 3), dtype=np.uint8)


def test_round_trip(tmp_path):
    recorder = ReplayRecorder("segmentation", NAMES)
    buffer = _images(0)
    recorder.record(1, "photo", buffer)
    buffer[:] = 0  # the recorder kept its own copy
    recorder.record(3, "photo", _images(3))
    masks = np.random.default_rng(5).random((3, 8, 6)) > 0.5
    recorder.record(3, "mask", masks)
    recorder.record_losses(1, "train", {"loss": 0.7})
    recorder.record_losses(3, "val", {"loss": np.float32(0.5), "iou": 0.61})
    index_path = recorder.save(tmp_path, "run")

    replay = load_replay(tmp_path, "run")
    assert (replay.kind, replay.names, replay.tile) == ("segmentation", NAMES, (8, 6))
    assert replay.epochs == [1, 3] and replay.keys == ["photo", "mask"]
    assert replay.key_epochs == {"photo": [1, 3], "mask": [3]}
    assert replay.losses == {1: {"train": {"loss": 0.7}}, 3: {"val": {"loss": 0.5, "iou": 0.61}}}
    assert np.array_equal(replay.frame("photo", 1), np.concatenate(list(_images(0)), axis=1))
    assert np.array_equal(replay.frame("photo", 3), np.concatenate(list(_images(3)), axis=1))
    mask_frame = replay.frame("mask", 3)
    assert mask_frame.shape == (8, 18, 3) and mask_frame.dtype == np.uint8
    assert np.array_equal(mask_frame[..., 0] == 255, np.concatenate(list(masks), axis=1))
    with pytest.raises(KeyError):
        replay.frame("mask", 1)

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["run.json", "run_mask.png", "run_photo.png"], "one strip per key and the index, nothing else"
    assert Image.open(tmp_path / "run_mask.png").mode == "L"
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in tmp_path.iterdir())
    entry = json.loads(index_path.read_text())["keys"]["photo"]
    assert entry == {"file": "run_photo.png", "epochs": [1, 3], "channels": 3}


def test_bad_records_are_refused():
    recorder = ReplayRecorder("colour", NAMES)
    with pytest.raises(ValueError, match="3 images"):
        recorder.record(1, "pred", _images(0, count=2))
    with pytest.raises(ValueError, match="uint8"):
        recorder.record(1, "pred", _images(0).astype(np.float32))
    with pytest.raises(ValueError, match="file"):
        recorder.record(1, "../pred", _images(0))
    recorder.record(1, "pred", _images(0))
    with pytest.raises(ValueError, match="8x6"):
        recorder.record(2, "pred", np.zeros((3, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="mix"):
        recorder.record(2, "pred", np.zeros((3, 8, 6), bool))
    with pytest.raises(ValueError, match="kind"):
        ReplayRecorder("audio", NAMES)


def test_damaged_replays_are_clear_errors(tmp_path):
    with pytest.raises(ReplayError):
        load_replay(tmp_path, "missing")
    recorder = ReplayRecorder("colour", NAMES)
    recorder.record(1, "pred", _images(0))
    recorder.save(tmp_path, "run")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "run_pred.png")
    with pytest.raises(ReplayError, match="index says"):
        load_replay(tmp_path, "run")
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ReplayError):
        load_replay(tmp_path, "run")
