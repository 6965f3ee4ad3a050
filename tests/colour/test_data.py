import pytest
import torch
from conftest import SHARED_DATA

from colorseg.colour import data as cifar
from colorseg.colour.data import load_horses, to_grey
from colorseg.errors import DataError


def test_image_folder_layout(image_folder_dump):
    horses = load_horses(image_folder_dump)
    assert horses.source == "image-folder"
    assert horses.train.shape == (40, 3, 32, 32) and horses.train.dtype == torch.uint8
    assert horses.test.shape == (10, 3, 32, 32)


def test_official_batches_keep_only_horses(cifar_batches):
    horses = load_horses(cifar_batches)  # parent of cifar-10-batches-py
    assert horses.source == "cifar-10-batches-py"
    # One horse (label 7) in each of the 5 training batches and in the test batch.
    assert horses.train.shape == (5, 3, 32, 32) and horses.test.shape == (1, 3, 32, 32)
    same = load_horses(cifar_batches / "cifar-10-batches-py")
    assert torch.equal(same.train, horses.train)


def test_grey_is_mean_of_rgb_in_unit_range():
    rgb = torch.tensor([[[[0]], [[30]], [[255]]]], dtype=torch.uint8)
    assert torch.allclose(to_grey(rgb), torch.tensor([[[[95 / 255]]]]))


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="--colour-download"):
        load_horses(tmp_path)


def test_download_uses_the_official_archive(tmp_path, cifar_batches, monkeypatch):
    calls = []

    def fake_download(url, download_root, md5):
        calls.append((url, md5))
        (tmp_path / "cifar-10-batches-py").symlink_to(cifar_batches / "cifar-10-batches-py")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_download)
    horses = load_horses(tmp_path, download=True)
    assert calls == [(cifar.CIFAR_URL, cifar.CIFAR_MD5)]
    assert len(horses.train) == 5


def test_offline_download_failure_is_explained(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    with pytest.raises(DataError, match="image-folder dump"):
        load_horses(tmp_path, download=True)


@pytest.mark.skipif(not (SHARED_DATA / "cifar10-images").is_dir(), reason="../shared/data is absent")
def test_shared_cifar_dump_has_the_expected_sizes():
    horses = load_horses(SHARED_DATA / "cifar10-images")
    assert horses.train.shape == (5000, 3, 32, 32) and horses.test.shape == (1000, 3, 32, 32)
