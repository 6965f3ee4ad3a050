"""The segmentation stage of train_all.py on a tiny synthetic horse folder."""

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from colorseg import seg_pipeline, segment
from colorseg.cifar import DataError
from colorseg.weights_io import SEG_BODY_STEM, SEG_HEAD_STEMS


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def horse_folder(tmp_path):
    root = tmp_path / "horses"
    (root / "rgb").mkdir(parents=True)
    (root / "figure_ground").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 13):
        mask = np.zeros((24, 32), dtype=np.uint8)
        mask[6 + i % 4 : 18, 4 : 20 + i % 8] = 255
        photo = rng.integers(0, 80, (24, 32, 3), dtype=np.uint8) + (mask[:, :, None] > 0) * np.uint8(150)
        Image.fromarray(photo).resize((64, 48)).save(root / "rgb" / f"horse{i:03d}.jpg")
        Image.fromarray(mask).save(root / "figure_ground" / f"horse{i:03d}.jpg")
    return root


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    seg_pipeline.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_arguments_are_prefixed_and_default_to_scratch():
    args = _args()
    assert args.seg_source == "scratch" and args.seg_backbone == "mobilenet_v3_large"
    assert all(name.startswith("seg_") for name in vars(args))


def test_run_trains_saves_and_reports(horse_folder, tmp_path):
    args = _args(
        "--seg-data", str(horse_folder), "--seg-image-size", "32", "--seg-epochs", "2",
        "--seg-batch-size", "4", "--seg-eval-every", "1", "--seg-threads", "1",
    )
    args.command = "python train_all.py --only segmentation --seg-epochs 2"  # as train_all.py sets it
    weights_dir, report_dir = tmp_path / "weights", tmp_path / "report"
    report = seg_pipeline.run(args, weights_dir, report_dir, torch.device("cpu"))["segmentation"]

    json.dumps(report)
    assert report["data"]["train_images"] + report["data"]["val_images"] == 12
    assert set(report["metrics"]["val"]) == {"cross_entropy", "soft_iou"}
    assert {"data", "body", "features", "head_cross_entropy", "head_soft_iou", "working_size", "evaluate", "total"} <= set(
        report["cpu_seconds"]
    )
    for plot in report["plots"]:
        assert (report_dir / plot).is_file()

    body = json.loads((weights_dir / f"{SEG_BODY_STEM}.json").read_text())
    assert body["source"] == "scratch" and body["stored_dtype"] == "float16" and body["image_size"] == 32
    assert body["regenerate"] == "python train_all.py --only segmentation"
    assert body["command"] == args.command
    assert {"command", "data", "recipe", "metrics", "history", "cpu_seconds", "sha256"} <= set(body)
    assert "sha256" in body["data"]["split"]
    # The inference size is chosen among the candidates by training-photo scores.
    assert body["working_size"] in {32, 48} and set(body["working_size_scores_train"]) == {"32", "48"}
    assert segment.load_segmenter(weights_dir).working_size == body["working_size"]
    for name, stem in SEG_HEAD_STEMS.items():
        head = json.loads((weights_dir / f"{stem}.json").read_text())
        assert head["loss"] == name and head["body_sha256"] == body["sha256"]
        assert head["metrics"]["val"] == pytest.approx(report["metrics"]["val"][name])

    # The scores recorded are those of the stored (float16) weights.
    rescored = segment.evaluate_folder(horse_folder, "val", weights_dir)
    for name, metrics in report["metrics"]["val"].items():
        assert rescored[name] == pytest.approx(metrics, abs=1e-6)


def test_run_with_pretrained_source_trains_heads_only(horse_folder, tmp_path, monkeypatch):
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    state = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).state_dict()
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", lambda url, *a, **k: state)
    args = _args("--seg-data", str(horse_folder), "--seg-source", "pretrained", "--seg-image-size", "32")
    report = seg_pipeline.run(args, tmp_path / "weights", tmp_path / "report", torch.device("cpu"))["segmentation"]
    body = json.loads((tmp_path / "weights" / f"{SEG_BODY_STEM}.json").read_text())
    assert body["source"] == "pretrained" and body["history"] == []
    assert report["settings"]["source"] == "pretrained"


def test_run_without_data_is_a_clear_error(tmp_path):
    args = _args("--seg-data", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="does not exist"):
        seg_pipeline.run(args, tmp_path / "weights", tmp_path / "report", torch.device("cpu"))
    assert not (tmp_path / "weights").exists()
