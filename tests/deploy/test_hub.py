"""colorseg.deploy.hub with the Hub API replaced by recorders: no network is used."""

from __future__ import annotations

import huggingface_hub
import pytest
from support import RecordingApi, make_colour_weights

from colorseg.deploy import hub
from colorseg.errors import WeightsError


def test_local_folder_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(hub.HUB_REPO_ENV, raising=False)
    source = hub.resolve_weights_dir(tmp_path)
    assert source.directory == tmp_path and "local folder" in source.message


def test_snapshot_of_the_named_repo(monkeypatch, tmp_path):
    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setenv(hub.HUB_REPO_ENV, "someone/colorseg-weights")
    monkeypatch.setenv(hub.HUB_REVISION_ENV, "v1")
    source = hub.resolve_weights_dir(tmp_path / "local")
    assert source.directory == tmp_path / "snapshot"
    assert "someone/colorseg-weights" in source.message and "v1" in source.message
    repo_id, kwargs = calls[0]
    assert repo_id == "someone/colorseg-weights" and kwargs["repo_type"] == "model" and kwargs["revision"] == "v1"
    assert "*.safetensors" in kwargs["allow_patterns"] and "reports/*.png" in kwargs["allow_patterns"]


def test_offline_falls_back_to_local_with_a_message(monkeypatch, tmp_path):
    def snapshot_download(repo_id, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("cannot reach the Hub and nothing is cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    source = hub.resolve_weights_dir(tmp_path, repo_id="someone/colorseg-weights")
    assert source.directory == tmp_path
    assert "Could not fetch" in source.message and "cannot reach the Hub" in source.message
    assert str(tmp_path) in source.message


def test_push_uploads_weights_descriptions_and_a_card_in_one_commit(monkeypatch, tmp_path):
    RecordingApi.instances.clear()
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    weights, reports = tmp_path / "weights", tmp_path / "reports"
    make_colour_weights(weights)
    (weights / "notes.txt").write_text("not a weight file")
    reports.mkdir()
    (reports / "colour_default_curves.png").write_bytes(b"png")
    (reports / "training_report.json").write_text("{}")

    url = hub.push_weights("someone/colorseg-weights", weights, token="secret", report_dir=reports)

    api = RecordingApi.instances[0]
    assert api.token == "secret" and url.endswith("/commit/abc")
    (kind, _, kwargs), (commit_kind, _, operations, commit_kwargs) = api.calls
    assert kind == "create_repo" and kwargs["exist_ok"] and kwargs["repo_type"] == "model"
    assert commit_kind == "create_commit" and commit_kwargs["repo_type"] == "model"
    names = sorted(op.path_in_repo for op in operations)
    expected = [p.name for p in weights.iterdir() if p.suffix in (".safetensors", ".json")]
    assert len(expected) == 8, "palette and three nets, tensors and descriptions"
    reported = ["reports/colour_default_curves.png", "reports/training_report.json"]
    assert names == sorted([*expected, "README.md", *reported])
    card = next(op for op in operations if op.path_in_repo == "README.md").path_or_fileobj
    assert b"COLORSEG_HUB_REPO=someone/colorseg-weights python app.py" in card


def test_push_with_nothing_to_push(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    with pytest.raises(WeightsError, match="no weights"):
        hub.push_weights("someone/colorseg-weights", tmp_path)
