"""Rebuild the derived examples from the committed farm-animal photos (examples/*.webp):

    python examples/derive.py        # needs requirements-baseline.txt for the masks

- ``cifar32/<animal>.png``: each photo centre-cropped to a square and downscaled to 32 x 32 px,
  the size of the CIFAR-10 images the colour nets were trained on (made from our free photos,
  never from CIFAR itself);
- ``masks/<animal>.png``: each photo's object as rembg's U²-Net-p sees it (its probability map
  above 0.5, white = object). These are a stronger reference model's answers, not ground truth:
  the app scores against them as "agreement with U²-Net-p", never as IoU.
Both inherit their photo's licence (examples/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CIFAR_SIZE = 32


def cifar_sized(photo: Image.Image) -> Image.Image:
    side = min(photo.size)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    square = photo.crop((left, top, left + side, top + side))
    return square.resize((CIFAR_SIZE, CIFAR_SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    from colorseg.segmentation.baseline import U2NetP

    model = U2NetP()
    (HERE / "cifar32").mkdir(exist_ok=True)
    (HERE / "masks").mkdir(exist_ok=True)
    for path in sorted(HERE.glob("*.webp")):
        photo = Image.open(path).convert("RGB")
        cifar_sized(photo).save(HERE / "cifar32" / f"{path.stem}.png", optimize=True)
        mask = model.probability(np.asarray(photo)).numpy() > 0.5
        Image.fromarray((mask * 255).astype(np.uint8)).save(HERE / "masks" / f"{path.stem}.png", optimize=True)
        print(f"{path.name}: object {mask.mean():.0%} of the photo")


if __name__ == "__main__":
    main()
