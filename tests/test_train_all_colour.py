"""End to end: train_all.py's colour part on tiny synthetic data, then the evaluation CLI."""

import json
import subprocess
import sys

import pytest

import train_all
from colorseg.weights_io import COLOUR_STEMS, PALETTE_STEM, load_module
from conftest import REPO


@pytest.fixture
def trained(tmp_path, image_folder_dump):
    weights, reports = tmp_path / "weights", tmp_path / "reports"
    code = train_all.main(
        ["--only", "colour", "--colour-data", str(image_folder_dump), "--epochs", "1", "--batch-size", "20",
         "--weights-dir", str(weights), "--report-dir", str(reports), "--device", "cpu"]
    )
    assert code == 0
    return weights, reports


def test_train_all_writes_weights_descriptions_and_report(trained):
    weights, reports = trained
    assert (weights / f"{PALETTE_STEM}.safetensors").is_file()
    for name, stem in COLOUR_STEMS.items():
        model, description = load_module(weights, stem)
        assert description["architecture"] == name
        assert description["recipe"]["name"] == "default"
        assert "train_all.py" in description["command"] and description["versions"]["torch"]
        assert len(description["palette"]) == 24
        assert set(description["metrics"]) >= {"val_loss", "val_accuracy"}
    report = json.loads((reports / "training_report.json").read_text())
    assert set(report["colour_default"]["models"]) == set(COLOUR_STEMS)
    assert (reports / "colour_default_curves.png").stat().st_size > 0
    assert not list(weights.glob(".*.tmp"))


def test_evaluate_cli_prints_one_json_object(trained, image_folder_dump):
    weights, _ = trained
    result = subprocess.run(
        [sys.executable, "-m", "colorseg.evaluate", "colour", str(image_folder_dump), "--weights-dir", str(weights)],
        capture_output=True, text=True, cwd=REPO, check=True,
    )
    scores = json.loads(result.stdout)
    assert set(scores) == {"PoolUpsampleNet", "ConvTransposeNet", "UNet"}
    for metrics in scores.values():
        assert metrics["loss"] > 0 and 0 <= metrics["accuracy"] <= 1


def test_evaluate_cli_explains_missing_weights(tmp_path, image_folder_dump):
    result = subprocess.run(
        [sys.executable, "-m", "colorseg.evaluate", "colour", str(image_folder_dump), "--weights-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "palette.json" in result.stderr and "train_all.py" in result.stderr


def test_batch_sweep_writes_table_and_plot(tmp_path, image_folder_dump, monkeypatch):
    monkeypatch.setattr("colorseg.colour_pipeline.SWEEP_BATCH_SIZES", (10, 20))
    reports = tmp_path / "reports"
    train_all.main(["--only", "colour", "--batch-sweep", "--colour-data", str(image_folder_dump), "--epochs", "1",
                    "--report-dir", str(reports), "--weights-dir", str(tmp_path / "w")])
    sweep = json.loads((reports / "batch_sweep.json").read_text())
    assert [row["batch_size"] for row in sweep["rows"]] == [10, 20]
    assert (reports / "batch_sweep.png").is_file()
    assert "| 20 |" in (reports / "batch_sweep.md").read_text()
    assert not (tmp_path / "w").exists(), "the sweep must not write weights"


def test_push_to_hub_after_training(tmp_path, image_folder_dump, monkeypatch):
    import huggingface_hub
    from test_hub import RecordingApi

    RecordingApi.instances.clear()
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    train_all.main(["--only", "colour", "--colour-models", "UNet", "--colour-data", str(image_folder_dump),
                    "--epochs", "1", "--weights-dir", str(tmp_path / "w"), "--report-dir", str(tmp_path / "r"),
                    "--push-to-hub", "someone/colorseg-weights"])
    (api,) = RecordingApi.instances
    commit = next(call for call in api.calls if call[0] == "create_commit")
    sent = {operation.path_in_repo for operation in commit[2]}
    assert {"colour_UNet.safetensors", "colour_UNet.json", "palette.json", "README.md"} <= sent
    assert "reports/training_report.json" in sent


def test_distillation_reads_the_teacher_from_the_weights_folder(trained, image_folder_dump):
    weights, reports = trained
    teacher_sha = load_module(weights, COLOUR_STEMS["UNet"])[1]["sha256"]
    code = train_all.main(
        ["--only", "colour", "--colour-data", str(image_folder_dump), "--epochs", "1", "--batch-size", "20",
         "--colour-models", "PoolUpsampleNet", "--teacher", "UNet", "--distill-weight", "0.5",
         "--weights-dir", str(weights), "--report-dir", str(reports), "--device", "cpu"]
    )
    assert code == 0
    _, description = load_module(weights, COLOUR_STEMS["PoolUpsampleNet"])
    assert description["recipe"]["teacher"] == "UNet" and description["recipe"]["distill_weight"] == 0.5
    assert description["teacher"]["sha256"] == teacher_sha


def test_distillation_refuses_a_teacher_with_another_palette(trained, image_folder_dump):
    weights, reports = trained
    description_path = weights / f"{COLOUR_STEMS['UNet']}.json"
    description = json.loads(description_path.read_text())
    description["palette"] = [[0.5, 0.5, 0.5]] * len(description["palette"])
    description_path.write_text(json.dumps(description))
    with pytest.raises(SystemExit, match="another palette"):
        train_all.main(
            ["--only", "colour", "--colour-data", str(image_folder_dump), "--epochs", "1",
             "--colour-models", "PoolUpsampleNet", "--teacher", "UNet", "--distill-weight", "0.5",
             "--weights-dir", str(weights), "--report-dir", str(reports), "--device", "cpu"]
        )
