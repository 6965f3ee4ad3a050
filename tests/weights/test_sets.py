"""Weights committed as a set: a kill at any step of a save leaves every file old or new, together.

Kills are injected at each file-system step of a save (not by timing luck): the step raises,
and, as after a real kill, no clean-up code of the writer runs and its lock is released.
"""

from __future__ import annotations

import os
import shutil
import stat
import time

import pytest
import torch

from colorseg import files
from colorseg.errors import WeightsError
from colorseg.paths import DEFAULT_WEIGHTS_DIR
from colorseg.weights import WeightSet, load_module, load_tensors, save_module
from colorseg.weights import sets as weight_set

STEMS = ("palette", "net_a", "net_b")


class Killed(BaseException):
    """Stands for SIGKILL at the injected step."""


def write_set(directory, version: float) -> None:
    with WeightSet(directory) as weight_set:
        for stem in STEMS:
            weight_set.save_tensors({"w": torch.full((4,), version)}, stem, {"version": version})


def versions(directory) -> set[float]:
    """The version every stem loads at (each load checks the sha256 against its JSON)."""
    found = set()
    for stem in STEMS:
        tensors, description = load_tensors(directory, stem)
        assert float(tensors["w"][0]) == description["version"], f"{stem}: tensors and JSON from different runs"
        found.add(description["version"])
    return found


STEP_FUNCTIONS = [
    ("os", "replace"),
    ("weight_set", "save_file"),
    ("weight_set", "fsync_dir"),
    ("weight_set", "sha256_of"),
    ("shutil", "rmtree"),
]


def _install_steps(monkeypatch, kill_at: int | None) -> list[str]:
    """Count (and at ``kill_at``, kill) every file-system step a save makes."""
    steps: list[str] = []
    killed = []
    modules = {"os": os, "weight_set": weight_set, "shutil": shutil}
    for module_name, name in STEP_FUNCTIONS:
        original = getattr(modules[module_name], name)

        def step(*args, _original=original, _name=name, **kwargs):
            steps.append(_name)
            if kill_at is not None and len(steps) - 1 == kill_at:
                killed.append(_name)
                raise Killed(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(modules[module_name], name, step)
    if kill_at is not None:
        # A killed process runs no clean-up: once killed, the set only drops its lock, as the kernel would.
        close = WeightSet._close

        def dead_close(self):
            if not killed:
                return close(self)
            if self._lock is not None:
                self._lock.close()

        monkeypatch.setattr(WeightSet, "_close", dead_close)
    return steps


def count_steps(tmp_path) -> int:
    directory = tmp_path / "count"
    write_set(directory, 1.0)
    with pytest.MonkeyPatch.context() as monkeypatch:
        steps = _install_steps(monkeypatch, None)
        write_set(directory, 2.0)
    assert "replace" in steps and "save_file" in steps
    return len(steps)


def test_a_kill_at_any_step_leaves_the_whole_set_old_or_new(tmp_path):
    total = count_steps(tmp_path)
    outcomes = []
    for kill_at in range(total):
        directory = tmp_path / f"kill{kill_at}"
        write_set(directory, 1.0)
        with pytest.MonkeyPatch.context() as monkeypatch:
            _install_steps(monkeypatch, kill_at)
            with pytest.raises(Killed):
                write_set(directory, 2.0)
        found = versions(directory)  # loading recovers first
        assert found in ({1.0}, {2.0}), f"kill at step {kill_at}: mixed versions {found}"
        outcomes.append(found.pop())
        leftovers = [p.name for p in directory.iterdir() if p.name.startswith(".")]
        assert not leftovers, f"kill at step {kill_at} left {leftovers}"
        # A further save works normally afterwards.
        write_set(directory, 3.0)
        assert versions(directory) == {3.0}
    assert outcomes[0] == 1.0 and outcomes[-1] == 2.0, "early kills keep the old set, late ones roll forward"


def test_a_read_only_folder_still_loads_one_consistent_version(tmp_path, monkeypatch):
    total = count_steps(tmp_path)
    for kill_at in range(total):
        directory = tmp_path / f"ro{kill_at}"
        write_set(directory, 1.0)
        with pytest.MonkeyPatch.context() as inner:
            _install_steps(inner, kill_at)
            with pytest.raises(Killed):
                write_set(directory, 2.0)
        with pytest.MonkeyPatch.context() as inner:
            # A Space's weights folder: recovery may not change anything there.
            def refuse(*args, **kwargs):
                raise PermissionError(13, "Read-only file system")

            for module, name in ((os, "replace"), (os, "unlink"), (os, "rmdir"), (shutil, "rmtree")):
                inner.setattr(module, name, refuse)
            try:
                found = versions(directory)
            except WeightsError:
                found = None  # refusing is allowed; mixing is not
        assert found in (None, {1.0}, {2.0}), f"kill at step {kill_at}: read-only load gave {found}"


def test_an_exception_inside_the_set_writes_nothing(tmp_path):
    write_set(tmp_path, 1.0)
    with pytest.raises(KeyboardInterrupt):
        with WeightSet(tmp_path) as weight_set:
            weight_set.save_tensors({"w": torch.full((4,), 2.0)}, "palette", {"version": 2.0})
            raise KeyboardInterrupt
    assert versions(tmp_path) == {1.0}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_recovery_leaves_a_live_writer_alone(tmp_path):
    write_set(tmp_path, 1.0)
    with WeightSet(tmp_path) as weight_set:
        weight_set.save_tensors({"w": torch.full((4,), 2.0)}, "palette", {"version": 2.0})
        staging = weight_set._staging
        assert versions(tmp_path) == {1.0}  # a load meanwhile recovers: the live set must survive it
        assert staging.is_dir()
        for stem in STEMS[1:]:
            weight_set.save_tensors({"w": torch.full((4,), 2.0)}, stem, {"version": 2.0})
    assert versions(tmp_path) == {2.0}


def test_stray_temporary_files_of_a_killed_run_are_cleaned(tmp_path):
    write_set(tmp_path, 1.0)
    old = tmp_path / ".net_a.safetensors.abc123.tmp"  # what the old atomic writes left after a kill
    old.write_bytes(b"half a file")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    abandoned = tmp_path / ".weightset-dead"  # a staging folder whose writer died before committing
    abandoned.mkdir()
    (abandoned / ".lock").touch()
    (abandoned / "net_a.safetensors").write_bytes(b"partial")
    fresh = tmp_path / ".net_b.safetensors.def456.tmp"  # may belong to a write in progress
    fresh.write_bytes(b"being written")
    assert versions(tmp_path) == {1.0}
    assert not old.exists() and not abandoned.exists() and fresh.exists()


def test_one_module_save_is_a_set_too(tmp_path, monkeypatch):
    """Today's bug: a kill between the .safetensors and the .json renames left the model unloadable."""
    from support import save_tiny_unet

    save_tiny_unet(tmp_path)
    calls = []
    real_replace = os.replace

    def replace(source, target):
        calls.append(target)
        if str(target).endswith(("net.safetensors", "net.json")) and len(calls) >= 2:
            raise Killed  # after the first of the model's two files is in place
        return real_replace(source, target)

    with monkeypatch.context() as inner:
        inner.setattr(os, "replace", replace)
        inner.setattr(WeightSet, "_close", lambda self: self._lock.close())
        with pytest.raises(Killed):
            _save_other_unet(tmp_path)
    _, description = load_module(tmp_path, "net")  # loadable (rolled forward)
    assert description["metadata_marker"] == "second"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no stray temporary files"


def _save_other_unet(directory):
    from colorseg.registry import create_model

    torch.manual_seed(1)
    model = create_model("UNet", num_filters=4, num_colours=6)
    save_module(
        model,
        directory,
        "net",
        architecture="UNet",
        constructor={"num_filters": 4, "num_colours": 6},
        metadata={"metadata_marker": "second"},
    )


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_files_get_the_mode_of_ordinary_files(tmp_path, umask):
    previous = os.umask(umask)
    try:
        from support import save_tiny_unet

        save_tiny_unet(tmp_path)
        files.atomic_write_json(tmp_path / "report.json", {"a": 1})
        files.atomic_write_bytes(tmp_path / "table.md", b"| a |\n")
    finally:
        os.umask(previous)
    for name in ("net.safetensors", "net.json", "report.json", "table.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_committed_weights_still_load():
    from colorseg.colour.inference import load_colourizers

    models = load_colourizers(DEFAULT_WEIGHTS_DIR)
    assert set(models.nets) == {"PoolUpsampleNet", "ConvTransposeNet", "UNet"} and not models.problems
