"""Inference with saved weights: both heads from one body pass, any size, refusing bad files."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support import SHARED_DATA, save_tiny_segmentation_weights

from colorseg import weights
from colorseg.errors import UsageError, WeightsError
from colorseg.paths import DEFAULT_WEIGHTS_DIR
from colorseg.segmentation import inference as segment
from colorseg.segmentation.inference import SEG_BODY_STEM, seg_head_stem
from colorseg.segmentation.losses import SEG_LOSSES
from colorseg.segmentation.models import SegmentationNet

SIZE = 64
TASKS = ("objects", "horses")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _save_tiny_weights(directory: Path):
    return save_tiny_segmentation_weights(directory, SIZE, TASKS)


@pytest.fixture
def weights_dir(tmp_path) -> Path:
    _save_tiny_weights(tmp_path / "weights")
    return tmp_path / "weights"


@pytest.mark.parametrize("task", TASKS)
def test_each_tasks_heads_equal_separate_forward_passes(tmp_path, task):
    body, heads = _save_tiny_weights(tmp_path)
    segmenter = segment.load_segmenter(tmp_path)
    assert segmenter.tasks == TASKS
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    result = segmenter.predict(image, task=task)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    for name in SEG_LOSSES:
        with torch.no_grad():
            expected = SegmentationNet(body, heads[task][name]).eval()(x).softmax(dim=1)[0, 1].numpy()
        np.testing.assert_allclose(getattr(result, f"prob_{name}"), expected, atol=1e-5)
        assert np.array_equal(getattr(result, f"mask_{name}"), expected > 0.5)


def test_flip_average_is_the_mean_of_both_views_logits_from_one_body_pass(tmp_path):
    body, heads = _save_tiny_weights(tmp_path)
    segmenter = segment.load_segmenter(tmp_path, flip_average=True)
    calls = []
    segmenter.body.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    image = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    result = segmenter.predict(image, task="horses")
    assert calls == [2], "the photo and its mirror go through the body as one batch"
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    for name in SEG_LOSSES:
        net = SegmentationNet(body, heads["horses"][name]).eval()
        with torch.no_grad():
            logits = (net(x) + net(x.flip(-1)).flip(-1)) / 2
            single = net(x).softmax(dim=1)[0, 1].numpy()
        expected = logits.softmax(dim=1)[0, 1].numpy()
        np.testing.assert_allclose(getattr(result, f"prob_{name}"), expected, atol=1e-5)
        assert np.abs(expected - single).max() > 1e-4, "the mirror view must change more than the tolerance"


def test_the_body_json_says_whether_to_flip_average(weights_dir):
    assert not segment.load_segmenter(weights_dir).flip_average  # bodies that do not say: one view
    path = weights_dir / f"{SEG_BODY_STEM}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "flip_average": True}))
    assert segment.load_segmenter(weights_dir).flip_average
    assert not segment.load_segmenter(weights_dir, flip_average=False).flip_average


def test_body_runs_once_for_every_head(weights_dir):
    segmenter = segment.load_segmenter(weights_dir)
    calls = []
    segmenter.body.register_forward_hook(lambda *args: calls.append(1))
    probs = segmenter.probabilities(np.zeros((20, 30, 3), dtype=np.uint8))
    assert len(calls) == 1 and {t: set(p) for t, p in probs.items()} == {t: set(SEG_LOSSES) for t in TASKS}


def test_unknown_task_is_a_clear_error(weights_dir):
    with pytest.raises(UsageError, match="no heads for task .flowers."):
        segment.load_segmenter(weights_dir).predict(np.zeros((8, 8, 3), dtype=np.uint8), task="flowers")


@pytest.mark.parametrize("shape", [(37, 91, 3), (120, 45, 3), (50, 50), (33, 40, 4)])
def test_any_size_and_aspect_gives_masks_at_input_resolution(weights_dir, shape):
    segmenter = segment.load_segmenter(weights_dir)
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    for working_size in (None, 32):
        result = segmenter.predict(image, working_size=working_size)
        for name in SEG_LOSSES:
            prob, mask = getattr(result, f"prob_{name}"), getattr(result, f"mask_{name}")
            assert prob.shape == shape[:2] and prob.dtype == np.float32
            assert mask.shape == shape[:2] and mask.dtype == bool
            assert 0 <= prob.min() and prob.max() <= 1


def test_bad_images_are_clear_errors(weights_dir):
    segmenter = segment.load_segmenter(weights_dir)
    with pytest.raises(ValueError, match="uint8"):
        segmenter.predict(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        segmenter.predict(np.zeros((8, 8, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="working_size"):
        segmenter.predict(np.zeros((8, 8, 3), dtype=np.uint8), working_size=4)


def test_description_holds_body_and_heads(weights_dir):
    description = segment.load_segmenter(weights_dir).description
    assert description["body"]["architecture"] == "DeepLabV3Body"
    assert description["body"]["stored_dtype"] == "float16"
    assert {stem: (d["task"], d["loss"]) for stem, d in description["heads"].items()} == {
        seg_head_stem(t, loss): (t, loss) for t in TASKS for loss in SEG_LOSSES
    }


def test_damaged_weight_file_is_refused(weights_dir):
    path = weights_dir / f"{SEG_BODY_STEM}.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="damaged weight file"):
        segment.load_segmenter(weights_dir)


def test_missing_head_is_refused(weights_dir):
    (weights_dir / f"{seg_head_stem('horses', 'soft_iou')}.json").unlink()
    with pytest.raises(WeightsError, match="missing weight description"):
        segment.load_segmenter(weights_dir)


def test_heads_of_another_body_are_refused(weights_dir):
    json_path = weights_dir / f"{seg_head_stem('objects', 'cross_entropy')}.json"
    description = json.loads(json_path.read_text())
    description["body_sha256"] = "0" * 64
    json_path.write_text(json.dumps(description))
    with pytest.raises(WeightsError, match="trained on another body"):
        segment.load_segmenter(weights_dir)


def test_unknown_backbone_in_description_is_refused(weights_dir):
    json_path = weights_dir / f"{SEG_BODY_STEM}.json"
    description = json.loads(json_path.read_text())
    description["constructor"] = {"backbone": "vgg"}
    json_path.write_text(json.dumps(description))
    with pytest.raises(WeightsError, match="unknown backbone"):
        segment.load_segmenter(weights_dir)


def test_evaluate_folder_scores_both_heads_of_a_task(weights_dir, tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(data / "images" / f"p{i}.png")
        Image.fromarray(((rng.random((30, 40)) > 0.5) * 255).astype(np.uint8)).save(data / "masks" / f"p{i}.png")
    scores = segment.evaluate_folder(data, "all", "horses", weights_dir)
    assert set(scores) == {"cross_entropy", "soft_iou"}
    for metrics in scores.values():
        assert set(metrics) == {"miou_thresholded", "iou", "pixel_accuracy"}
        assert all(0 <= value <= 1 for value in metrics.values())


COMMITTED_TASK_DATA = {"flowers": "oxford17flowers", "horses": "weizmann_horse_db", "objects": "davis2016"}


@pytest.mark.skipif(
    not (SHARED_DATA.is_dir() and (DEFAULT_WEIGHTS_DIR / f"{seg_head_stem('objects', 'soft_iou')}.json").is_file()),
    reason="needs ../shared/data and committed segmentation weights",
)
@pytest.mark.parametrize("task", ["flowers", "horses"])
def test_committed_weights_score_what_their_descriptions_record(task):
    # The committed heads must reproduce, through the evaluation path, the validation
    # metrics written into their JSON at training time (README quotes them).
    folder = COMMITTED_TASK_DATA[task]
    scores = segment.evaluate_folder(SHARED_DATA / folder, "val", task)
    for loss in SEG_LOSSES:
        recorded = weights.read_description(DEFAULT_WEIGHTS_DIR, seg_head_stem(task, loss))["metrics"]["val"]
        for metric, value in scores[loss].items():
            assert value == pytest.approx(recorded[task][metric], abs=1e-4), (loss, metric, scores)
