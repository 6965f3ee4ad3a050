"""Shared fixtures: small synthetic data in both CIFAR layouts, built in tmp folders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support import REPO, SHARED_DATA  # noqa: F401  (fixtures below use them)


def synthetic_horses(count: int, seed: int) -> np.ndarray:
    """uint8 [count, 32, 32, 3]: smooth colour gradients with a darker blob, learnable quickly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    images = []
    for _ in range(count):
        base = rng.uniform(0.2, 0.9, size=3)
        tilt = rng.uniform(-0.3, 0.3, size=3)
        image = base + tilt * xx[..., None] + tilt[::-1] * yy[..., None]
        cy, cx = rng.uniform(8, 24, size=2)
        blob = ((yy * 31 - cy) ** 2 + (xx * 31 - cx) ** 2) < 40
        image[blob] *= 0.4
        images.append(np.clip(image * 255, 0, 255).astype(np.uint8))
    return np.stack(images)


@pytest.fixture
def image_folder_dump(tmp_path: Path) -> Path:
    """<root>/{train,test}/horse/NNNN.png, 40 train and 10 test images."""
    root = tmp_path / "cifar-images"
    for split, count, seed in (("train", 40, 0), ("test", 10, 1)):
        folder = root / split / "horse"
        folder.mkdir(parents=True)
        for index, image in enumerate(synthetic_horses(count, seed)):
            Image.fromarray(image).save(folder / f"{index:04d}.png")
    return root


@pytest.fixture
def cifar_batches(tmp_path: Path) -> Path:
    """<root>/cifar-10-batches-py/ with the official pickle format: 10 images per batch, labels 0..9."""
    root = tmp_path / "cifar"
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        images = synthetic_horses(10, seed)
        data = images.transpose(0, 3, 1, 2).reshape(10, -1)
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": data, b"labels": list(range(10))}, handle)
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: more threads only contend (with each other and with other jobs on a
    small CI machine) and make such tests many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
