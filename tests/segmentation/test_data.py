"""Segmentation data: the three layouts, the split rule and batched augmentation."""

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from seg_fixtures import make_davis, make_flower_labels
from support import SHARED_DATA

from colorseg.errors import DataError
from colorseg.segmentation import augment as seg_augment
from colorseg.segmentation import data as seg_data
from colorseg.segmentation import oxford17
from colorseg.segmentation.losses import IGNORE

SHARED_WEIZMANN = SHARED_DATA / "weizmann_horse_db"


def _photo(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _grey_mask(width: int, height: int) -> np.ndarray:
    """Grey levels around the > 127 threshold, as JPEG masks have."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[:, : width // 2] = 200
    mask[: height // 2, : width // 2] = 128  # just above the threshold: foreground
    mask[height // 2 :, width // 2 :] = 127  # just below: background
    return mask


def _make_folder(root: Path, photos: str, masks: str, names: list[str], mask_suffix: str = ".png") -> None:
    (root / photos).mkdir(parents=True)
    (root / masks).mkdir(parents=True)
    for i, name in enumerate(names):
        _photo(40, 30, i).save(root / photos / f"{name}.jpg")  # photo twice the mask's size
        Image.fromarray(_grey_mask(20, 15)).save(root / masks / f"{name}{mask_suffix}")


def test_weizmann_layout_resizes_photo_to_mask_and_thresholds(tmp_path):
    _make_folder(tmp_path, "rgb", "figure_ground", ["horse001", "horse002"])
    layout, pairs = seg_data.find_pairs(tmp_path)
    assert layout == "weizmann" and [p.name for p in pairs] == ["horse001", "horse002"]
    samples = seg_data.load_samples(tmp_path)
    assert samples[0].image.shape == (15, 20, 3) and samples[0].image.dtype == np.uint8
    assert samples[0].mask.dtype == np.uint8
    assert np.array_equal(samples[0].mask, _grey_mask(20, 15) > 127)


def test_flower_label_maps_mark_flowers_and_ignore_unlabelled(tmp_path):
    root = make_flower_labels(tmp_path / "flowers", count=4, unlabelled_photos=2)
    layout, pairs = seg_data.find_pairs(root)
    assert layout == "oxford17_labels" and len(pairs) == 4  # photos without a label map are skipped
    labels = np.asarray(Image.open(root / "labels" / "image_0001.png"))
    (sample, *_) = seg_data.load_samples(root)
    assert np.array_equal(sample.mask == 1, labels == 1)
    assert np.array_equal(sample.mask == IGNORE, labels == 0) and (labels == 0).any()
    assert np.array_equal(sample.mask == 0, labels == 3)
    tensors = seg_data.load_split_tensors(root, "all", 16)
    assert set(tensors.masks.unique().tolist()) <= {0, 1, IGNORE}


def test_davis_frames_are_split_by_sequence(tmp_path):
    root = make_davis(tmp_path / "davis", sequences=("bear", "boat", "camel", "cows", "swan"), frames=3)
    layout, pairs = seg_data.find_pairs(root)
    assert layout == "davis" and len(pairs) == 15 and pairs[0].name == "bear/00000" and pairs[0].group == "bear"
    val = seg_data.select_split(root, "val")
    train = seg_data.select_split(root, "train")
    val_sequences = {p.group for p in val}
    assert val_sequences == {s for s in ("bear", "boat", "camel", "cows", "swan") if seg_data.is_validation(s, 25)}
    assert val_sequences and not val_sequences & {p.group for p in train}
    assert len(val) + len(train) == 15 and len(val) % 3 == 0  # whole sequences only
    sample = seg_data.load_samples(root, "val")[0]
    assert sample.image.shape == (27, 48, 3) and set(np.unique(sample.mask)) <= {0, 1}


def test_mask_of_another_aspect_ratio_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _photo(40, 30, 0).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((30, 30), dtype=np.uint8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(DataError, match="aspect ratio"):
        seg_data.load_samples(tmp_path)


def test_resized_and_augmented_masks_keep_ignore_labels():
    masks = torch.zeros(2, 32, 32, dtype=torch.uint8)
    masks[:, 8:24, 8:24] = 1
    masks[:, :, :4] = IGNORE
    small = seg_data.resize_masks(masks, (16, 16))
    assert (small[:, :, :2] == IGNORE).all() and (small[:, 5:11, 5:11] == 1).all() and (small[:, :, 3:] != IGNORE).all()
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    config = seg_augment.Augmentation(
        min_scale=1, max_scale=1, max_aspect=1, max_rotation_deg=0, flip=False, copy_paste=0
    )
    _, target = seg_augment.augment(images, masks, config, torch.Generator().manual_seed(0))
    assert torch.equal(target, masks.long())


def test_generic_layout_reads_zero_one_masks(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _photo(8, 6, 0).save(tmp_path / "images" / "a.png")
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[2:4, 3:6] = 1
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    layout, _ = seg_data.find_pairs(tmp_path)
    (sample,) = seg_data.load_samples(tmp_path)
    assert layout == "folder"
    assert np.array_equal(sample.mask, mask)


def test_missing_mask_and_unknown_layout_are_clear_errors(tmp_path):
    _make_folder(tmp_path / "a", "images", "masks", ["x", "y"])
    (tmp_path / "a" / "masks" / "y.png").unlink()
    with pytest.raises(DataError, match="1 photos .* have no mask"):
        seg_data.find_pairs(tmp_path / "a")
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="no known segmentation layout"):
        seg_data.find_pairs(tmp_path / "b")
    with pytest.raises(DataError, match="does not exist"):
        seg_data.find_pairs(tmp_path / "missing")


def test_split_is_deterministic_disjoint_and_about_twenty_percent(tmp_path):
    names = [f"horse{i:03d}" for i in range(60)]
    _make_folder(tmp_path, "rgb", "figure_ground", names)
    train = [p.name for p in seg_data.select_split(tmp_path, "train")]
    val = [p.name for p in seg_data.select_split(tmp_path, "val")]
    assert sorted(train + val) == names and not set(train) & set(val)
    assert val == [n for n in names if seg_data.is_validation(n)]
    assert val == [p.name for p in seg_data.select_split(tmp_path, "val")]
    many = [f"image{i}" for i in range(2000)]
    assert 0.17 < sum(map(seg_data.is_validation, many)) / len(many) < 0.23
    # A file keeps its side when others are added.
    (tmp_path / "rgb" / "horse000.jpg").unlink()
    (tmp_path / "figure_ground" / "horse000.png").unlink()
    assert [p.name for p in seg_data.select_split(tmp_path, "val")] == [n for n in val if n != "horse000"]
    with pytest.raises(ValueError, match="unknown split"):
        seg_data.select_split(tmp_path, "test")


def test_samples_to_tensors(tmp_path):
    _make_folder(tmp_path, "rgb", "figure_ground", ["h1", "h2", "h3"])
    tensors = seg_data.load_split_tensors(tmp_path, "all", 16)
    assert tensors.images.shape == (3, 3, 16, 16) and tensors.images.dtype == torch.uint8
    assert tensors.masks.shape == (3, 16, 16) and tensors.masks.dtype == torch.uint8
    assert tensors.names == ["h1", "h2", "h3"]
    # Left half of the mask is foreground (200 or 128), right half background.
    assert (tensors.masks[:, :, :6] == 1).all() and not tensors.masks[:, :, 10:].any()


def test_augmentation_moves_photo_and_mask_together():
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(8, 32, 32, dtype=torch.bool)
    masks[:, 8:20, 4:26] = True
    masks[1::2, 20:28, 10:14] = True
    images = (masks[:, None].expand(-1, 3, -1, -1) * 255).to(torch.uint8)
    config = seg_augment.Augmentation(brightness=0.0, contrast=0.0, saturation=0.0)
    photo, target = seg_augment.augment(images, masks, config, generator)
    assert photo.shape == (8, 3, 32, 32) and photo.dtype == torch.float32
    assert target.shape == (8, 32, 32) and target.dtype == torch.long and set(target.unique().tolist()) <= {0, 1}
    agreement = ((photo[:, 0] > 127.5).long() == target).float().mean()
    assert agreement > 0.99
    assert not torch.equal(target.bool(), masks)  # something did move
    again, _ = seg_augment.augment(images, masks, config, torch.Generator().manual_seed(0))
    assert torch.equal(photo, again)


def test_augmentation_can_sample_at_a_smaller_size():
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    masks = torch.rand(3, 32, 32) > 0.5
    photo, target = seg_augment.augment(images, masks, seg_augment.Augmentation(), torch.Generator().manual_seed(0), 16)
    assert photo.shape == (3, 3, 16, 16) and target.shape == (3, 16, 16)


def test_augmentation_without_randomness_is_the_identity():
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    masks = torch.rand(2, 16, 16) > 0.5
    config = seg_augment.Augmentation(
        min_scale=1,
        max_scale=1,
        max_aspect=1,
        max_rotation_deg=0,
        flip=False,
        brightness=0,
        contrast=0,
        saturation=0,
        copy_paste=0,
    )
    photo, target = seg_augment.augment(images, masks, config, torch.Generator().manual_seed(0))
    assert torch.allclose(photo, images.float(), atol=1e-3)
    assert torch.equal(target.bool(), masks)


def test_copy_paste_puts_the_next_samples_object_on_a_sample():
    """Sample 0 gets sample 1's object (a bright square), shrunk to half and moved to the top
    left corner; pasted pixels are foreground even where sample 0's mask ignored them."""
    images = torch.zeros(2, 3, 32, 32)
    masks = torch.zeros(2, 32, 32, dtype=torch.long)
    masks[0, :, 24:] = IGNORE
    masks[0, 14:20, 14:20] = 1
    images[1, :, 8:24, 8:24] = 200.0
    masks[1, 8:24, 8:24] = 1
    params = {
        "paste": torch.tensor([True, False]),
        "paste_scale": torch.tensor([0.5, 0.5]),
        "paste_x": torch.tensor([1.0, 0.0]),
        "paste_y": torch.tensor([1.0, 0.0]),
    }
    photo, target = seg_augment.paste_objects(images, masks, params)
    # Half size, flush with the top left corner: the 16-px square at 8..24 lands at 4..12.
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[4:12, 4:12] = True
    assert torch.equal(target[0] == 1, expected | (masks[0] == 1))
    assert (target[0, :, 24:] == IGNORE).all() and (photo[0, :, 4:12, 4:12] > 150).all()
    assert torch.equal(photo[1], images[1]) and torch.equal(target[1], masks[1])  # not chosen: unchanged
    params["paste_x"] = torch.tensor([-1.0, 0.0])  # flush right: partly over the ignored strip, which becomes known
    _, target = seg_augment.paste_objects(images, masks, params)
    assert (
        (target[0, 4:12, 20:28] == 1).all()
        and (target[0, 12:, 24:] == IGNORE).all()
        and (target[0, :4, 24:] == IGNORE).all()
    )


def test_copy_paste_draws_come_after_the_others():
    """Turning copy-paste on or off leaves every other random number of a batch as it was."""
    with_paste = seg_augment.draw_augmentation(
        6, seg_augment.Augmentation(copy_paste=0.5), torch.Generator().manual_seed(0)
    )
    without = seg_augment.draw_augmentation(6, seg_augment.Augmentation(copy_paste=0), torch.Generator().manual_seed(0))
    assert set(with_paste) - set(without) == {"paste", "paste_scale", "paste_x", "paste_y"}
    assert all(torch.equal(without[key], with_paste[key]) for key in without)
    everything = seg_augment.draw_augmentation(
        4000, seg_augment.Augmentation(copy_paste=0.5), torch.Generator().manual_seed(0)
    )
    assert 0.45 < everything["paste"].float().mean() < 0.55


# --- Oxford 17 Flowers on a replica of its official archives -------------------------------


def _oxford_replica(server: Path) -> None:
    """17flowers.tgz (jpg/), trimaps.tgz (trimaps/, only for some photos), datasplits.mat."""
    from scipy.io import savemat

    build = server / "build"
    (build / "jpg").mkdir(parents=True)
    (build / "trimaps").mkdir()
    for i in range(1, 9):
        _photo(24, 20, i).save(build / "jpg" / f"image_{i:04d}.jpg")
    (build / "jpg" / "files.txt").write_text("\n".join(f"image_{i:04d}.jpg" for i in range(1, 9)))
    for i in range(1, 7):  # photos 7 and 8 have no trimap, as 512 of the 1360 real ones
        trimap = np.zeros((20, 24, 3), dtype=np.uint8)  # black: background
        trimap[4:12, 6:18] = (128, 0, 0)  # foreground
        trimap[12:14, 6:18] = (255, 255, 255)  # the "unknown" boundary band: not foreground
        trimap[14:16, 6:18] = (128, 0, 1)  # almost the foreground colour: not foreground
        Image.fromarray(trimap).save(build / "trimaps" / f"image_{i:04d}.png")
    for archive, folder in (("17flowers.tgz", "jpg"), ("trimaps.tgz", "trimaps")):
        with tarfile.open(server / archive, "w:gz") as tar:
            tar.add(build / folder, arcname=folder)
    # MATLAB row vectors, as in the official file; trn2 overlaps val1 (image 3) as the real splits do.
    savemat(
        server / "datasplits.mat",
        {
            "trn1": np.array([[1, 2, 7]]),
            "trn2": np.array([[2, 3, 4]]),
            "trn3": np.array([[1, 4]]),
            "val1": np.array([[3, 5]]),
            "tst1": np.array([[6, 8]]),
        },
    )


def test_oxford17_download_extract_and_binary_trimaps(tmp_path, monkeypatch):
    server = tmp_path / "server"
    server.mkdir()
    _oxford_replica(server)
    fetched = []

    def fake_download_url(url, root, *args, **kwargs):
        fetched.append(url)
        shutil.copy(server / Path(url).name, Path(root) / Path(url).name)

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download_url)
    root = tmp_path / "flowers"
    root.mkdir()
    with pytest.raises(DataError, match="17flowers.tgz"):
        oxford17.prepare_oxford17(root, download=False)
    oxford17.prepare_oxford17(root, download=True)
    assert fetched == list(oxford17.OXFORD17_URLS.values())

    layout, pairs = seg_data.find_pairs(root)
    assert layout == "oxford17"
    assert [p.name for p in pairs] == [f"image_{i:04d}" for i in range(1, 7)]
    assert [p.name for p in seg_data.select_split(root, "val")] == ["image_0003", "image_0005"]
    # trn1 + trn2 + trn3 minus val1; image 7 has no trimap.
    assert [p.name for p in seg_data.select_split(root, "train")] == ["image_0001", "image_0002", "image_0004"]
    sample = seg_data.load_samples(root, "val")[0]
    expected = np.zeros((20, 24), dtype=bool)
    expected[4:12, 6:18] = True
    assert np.array_equal(sample.mask, expected)


def test_oxford17_archives_already_in_folder_are_extracted(tmp_path):
    _oxford_replica(tmp_path)
    assert seg_data.detect_layout(tmp_path) == "oxford17"
    assert len(seg_data.load_samples(tmp_path)) == 6


def test_oxford17_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, root, *args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", offline)
    with pytest.raises(DataError, match="could not download .*17flowers.tgz"):
        oxford17.prepare_oxford17(tmp_path, download=True)


@pytest.mark.skipif(not SHARED_WEIZMANN.is_dir(), reason="../shared/data/weizmann_horse_db is absent")
def test_shared_weizmann_split():
    train = seg_data.select_split(SHARED_WEIZMANN, "train")
    val = seg_data.select_split(SHARED_WEIZMANN, "val")
    assert (len(train), len(val)) == (232, 48)
    assert seg_data.find_pairs(SHARED_WEIZMANN)[0] == "weizmann"
