"""End to end: train_all.py's colour part on tiny synthetic data, then the evaluation CLI."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from colorseg.cli import train as train_cli
from colorseg.colour import pipeline as colour_pipeline
from colorseg.colour.inference import load_colourizers
from colorseg.colour.models import COLOUR_STEMS
from colorseg.colour.palette import PALETTE_STEM, load_palette_and_digest, save_palette
from colorseg.weights import load_module, read_description


@pytest.fixture
def trained(tmp_path, image_folder_dump):
    weights, reports = tmp_path / "weights", tmp_path / "reports"
    code = train_cli.main(
        [
            "--only",
            "colour",
            "--colour-data",
            str(image_folder_dump),
            "--colour-epochs",
            "1",
            "--colour-batch-size",
            "20",
            "--weights-dir",
            str(weights),
            "--report-dir",
            str(reports),
            "--device",
            "cpu",
        ]
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
        # Data by name, layout, counts and content hash; no machine path anywhere.
        assert description["data"]["folder"] == "cifar-images" and len(description["data"]["images_sha256"]) == 64
        assert str(weights.parent) not in json.dumps(description)
    report = json.loads((reports / "training_report.json").read_text())
    assert set(report["colour_default"]["models"]) == set(COLOUR_STEMS)
    assert (reports / "colour_default_curves.png").stat().st_size > 0
    assert not list(weights.glob(".*.tmp"))


def test_evaluate_cli_prints_one_json_object(trained, image_folder_dump):
    weights, _ = trained
    result = subprocess.run(
        [sys.executable, "-m", "colorseg.evaluate", "colour", str(image_folder_dump), "--weights-dir", str(weights)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    scores = json.loads(result.stdout)
    assert set(scores) == {"PoolUpsampleNet", "ConvTransposeNet", "UNet"}
    for metrics in scores.values():
        assert metrics["loss"] > 0 and 0 <= metrics["accuracy"] <= 1


def test_reports_go_beside_an_explicit_weights_dir(tmp_path, image_folder_dump, monkeypatch):
    committed_reports = tmp_path / "repo_reports"
    monkeypatch.setattr(train_cli, "DEFAULT_REPORTS_DIR", committed_reports)
    code = train_cli.main(
        [
            "--only",
            "colour",
            "--colour-nets",
            "UNet",
            "--colour-data",
            str(image_folder_dump),
            "--colour-epochs",
            "1",
            "--weights-dir",
            str(tmp_path / "experiment" / "weights"),
        ]
    )
    assert code == 0
    assert (tmp_path / "experiment" / "reports" / "training_report.json").is_file()
    assert not committed_reports.exists(), "an experiment must not touch the committed weights' reports"


def test_evaluate_cli_explains_missing_weights(tmp_path, image_folder_dump):
    result = subprocess.run(
        [sys.executable, "-m", "colorseg.evaluate", "colour", str(image_folder_dump), "--weights-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "palette.json" in result.stderr and "train_all.py" in result.stderr


def test_batch_sweep_writes_table_and_plot(tmp_path, image_folder_dump, monkeypatch):
    monkeypatch.setattr("colorseg.colour.pipeline.SWEEP_BATCH_SIZES", (10, 20))
    reports = tmp_path / "reports"
    train_cli.main(
        [
            "--only",
            "colour",
            "--colour-batch-sweep",
            "--colour-data",
            str(image_folder_dump),
            "--colour-epochs",
            "1",
            "--report-dir",
            str(reports),
            "--weights-dir",
            str(tmp_path / "w"),
        ]
    )
    sweep = json.loads((reports / "batch_sweep.json").read_text())
    assert [row["batch_size"] for row in sweep["rows"]] == [10, 20]
    assert (reports / "batch_sweep.png").is_file()
    assert "| 20 |" in (reports / "batch_sweep.md").read_text()
    assert not (tmp_path / "w").exists(), "the sweep must not write weights"


def test_push_to_hub_after_training(tmp_path, image_folder_dump, monkeypatch):
    import huggingface_hub
    from support import RecordingApi

    RecordingApi.instances.clear()
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    train_cli.main(
        [
            "--only",
            "colour",
            "--colour-nets",
            "UNet",
            "--colour-data",
            str(image_folder_dump),
            "--colour-epochs",
            "1",
            "--weights-dir",
            str(tmp_path / "w"),
            "--report-dir",
            str(tmp_path / "r"),
            "--push-to-hub",
            "someone/colorseg-weights",
        ]
    )
    (api,) = RecordingApi.instances
    commit = next(call for call in api.calls if call[0] == "create_commit")
    sent = {operation.path_in_repo for operation in commit[2]}
    assert {"colour_UNet.safetensors", "colour_UNet.json", "palette.json", "README.md"} <= sent
    assert "reports/training_report.json" in sent


def test_distillation_reads_the_teacher_from_the_weights_folder(trained, image_folder_dump):
    weights, reports = trained
    teacher_sha = load_module(weights, COLOUR_STEMS["UNet"])[1]["sha256"]
    code = train_cli.main(
        [
            "--only",
            "colour",
            "--colour-data",
            str(image_folder_dump),
            "--colour-epochs",
            "1",
            "--colour-batch-size",
            "20",
            "--colour-nets",
            "PoolUpsampleNet",
            "--colour-teacher",
            "UNet",
            "--colour-distill-weight",
            "0.5",
            "--weights-dir",
            str(weights),
            "--report-dir",
            str(reports),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    _, description = load_module(weights, COLOUR_STEMS["PoolUpsampleNet"])
    assert description["recipe"]["teacher"] == "UNet" and description["recipe"]["distill_weight"] == 0.5
    assert description["teacher"]["sha256"] == teacher_sha


def test_distillation_refuses_a_teacher_with_another_palette(trained, image_folder_dump, capsys):
    weights, reports = trained
    description_path = weights / f"{COLOUR_STEMS['UNet']}.json"
    description = json.loads(description_path.read_text())
    description["palette"] = [[0.5, 0.5, 0.5]] * len(description["palette"])
    description_path.write_text(json.dumps(description))
    code = train_cli.main(
        [
            "--only",
            "colour",
            "--colour-data",
            str(image_folder_dump),
            "--colour-epochs",
            "1",
            "--colour-nets",
            "PoolUpsampleNet",
            "--colour-teacher",
            "UNet",
            "--colour-distill-weight",
            "0.5",
            "--weights-dir",
            str(weights),
            "--report-dir",
            str(reports),
            "--device",
            "cpu",
        ]
    )
    assert code == 2 and "another palette" in capsys.readouterr().err


# ---------------------------------------------------------------- palette and nets as one set


def _snapshot(weights):
    return {p.name: p.read_bytes() for p in sorted(weights.iterdir())}


def _argv(data, weights, reports, *extra):
    return [
        "--only",
        "colour",
        "--colour-data",
        str(data),
        "--colour-epochs",
        "1",
        "--colour-batch-size",
        "20",
        "--weights-dir",
        str(weights),
        "--report-dir",
        str(reports),
        "--device",
        "cpu",
        *extra,
    ]


def test_a_run_that_stops_early_writes_no_palette(trained, image_folder_dump, monkeypatch, capsys):
    """Today the palette was written before any net trained: a --colour-holdout run (another palette)
    stopped after its first net left the committed nets reading the wrong colours."""
    weights, reports = trained
    before = _snapshot(weights)
    real_fit, calls = colour_pipeline.train_colour_net, []

    def fit_then_interrupt(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(colour_pipeline, "train_colour_net", fit_then_interrupt)
    code = train_cli.main(_argv(image_folder_dump, weights, reports, "--colour-holdout", "10"))
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert _snapshot(weights) == before, "nothing of the unfinished run may land"
    models = load_colourizers(weights)
    assert not models.problems and set(models.nets) == set(COLOUR_STEMS)


def test_a_holdout_run_commits_its_palette_with_its_nets(trained, image_folder_dump):
    weights, reports = trained
    old_palette = load_palette_and_digest(weights)[0]
    assert train_cli.main(_argv(image_folder_dump, weights, reports, "--colour-holdout", "10")) == 0
    palette, digest = load_palette_and_digest(weights)
    assert not torch.allclose(palette, old_palette), "a holdout run fits its palette on fewer images"
    models = load_colourizers(weights)
    assert not models.problems and set(models.nets) == set(COLOUR_STEMS)
    for stem in COLOUR_STEMS.values():
        assert read_description(weights, stem)["palette_sha256"] == digest


def test_nets_refuse_a_palette_they_were_not_trained_with(trained, image_folder_dump):
    weights, _ = trained
    save_palette(torch.rand(24, 3), weights, {"what": "a palette from a run that stopped early"})
    models = load_colourizers(weights)
    assert not models.nets
    for why in models.problems.values():
        assert "another palette" in why and "python train_all.py" in why
    result = subprocess.run(
        [sys.executable, "-m", "colorseg.evaluate", "colour", str(image_folder_dump), "--weights-dir", str(weights)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2 and "another palette" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_scores_the_other_nets_when_one_is_damaged(trained, tmp_path, image_folder_dump):
    weights, _ = trained
    path = weights / f"{COLOUR_STEMS['UNet']}.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    # Only test/horse/, and a training folder it must not read (it would fail on this file).
    only_test = tmp_path / "only-test"
    shutil.copytree(image_folder_dump / "test", only_test / "test")
    result = subprocess.run(
        [sys.executable, "-m", "colorseg.evaluate", "colour", str(only_test), "--weights-dir", str(weights)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert "damaged" in scores["UNet"]["error"] and "train_all.py" in scores["UNet"]["error"]
    assert scores["PoolUpsampleNet"]["loss"] > 0 and scores["ConvTransposeNet"]["loss"] > 0
    (only_test / "train" / "horse").mkdir(parents=True)
    (only_test / "train" / "horse" / "0000.png").write_bytes(b"not a png")
    result = subprocess.run(
        [sys.executable, "-m", "colorseg.evaluate", "colour", str(only_test), "--weights-dir", str(weights)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0 and json.loads(result.stdout)["ConvTransposeNet"]["loss"] > 0


# ---------------------------------------------------------------- one clear line from the CLIs


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(("error:", "interrupted:"))]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_train_all_missing_data_folder_is_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "train_all.py",
            "--only",
            "colour",
            "--colour-data",
            str(tmp_path / "nowhere"),
            "--weights-dir",
            str(tmp_path / "w"),
            "--report-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    line = _one_line_error(result.stderr)
    assert "nowhere" in line and "--colour-download" in line


def test_train_all_empty_data_folder_is_one_line(tmp_path, capsys):
    for split in ("train", "test"):
        (tmp_path / "empty" / split / "horse").mkdir(parents=True)
    code = train_cli.main(_argv(tmp_path / "empty", tmp_path / "w", tmp_path / "r"))
    assert code == 2 and "no images" in _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_train_all_damaged_teacher_is_one_line(trained, image_folder_dump, capsys):
    weights, reports = trained
    (weights / f"{COLOUR_STEMS['UNet']}.safetensors").write_bytes(b"damaged")
    code = train_cli.main(
        _argv(
            image_folder_dump,
            weights,
            reports,
            "--colour-nets",
            "PoolUpsampleNet",
            "--colour-teacher",
            "UNet",
            "--colour-distill-weight",
            "0.5",
        )
    )
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2 and "distillation needs a trained UNet" in line and "damaged" in line


def test_train_all_ctrl_c_exits_130_and_debug_shows_the_traceback(tmp_path, image_folder_dump, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(colour_pipeline, "train_colour_net", interrupted)
    assert train_cli.main(_argv(image_folder_dump, tmp_path / "w", tmp_path / "r")) == 130
    assert "interrupted" in _one_line_error(capsys.readouterr().err)
    with pytest.raises(KeyboardInterrupt):
        train_cli.main(_argv(image_folder_dump, tmp_path / "w", tmp_path / "r", "--debug"))


def test_evaluate_ctrl_c_and_missing_folder(tmp_path, monkeypatch, capsys):
    from colorseg.cli import evaluate as evaluate_cli

    assert evaluate_cli.main(["colour", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in _one_line_error(capsys.readouterr().err)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_cli, "evaluate_colour", interrupted)
    assert evaluate_cli.main(["colour", str(tmp_path)]) == 130
    assert "interrupted" in _one_line_error(capsys.readouterr().err)
