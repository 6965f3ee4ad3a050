"""README's figure: the "Any object" soft-IoU head on the nine farm-animal examples.

    python docs/any_object_sheet.py [--out docs/screenshots/any_object_farm_photos.png]

The mask is tinted in the soft-IoU head's colour (blue, as in the app) and everything else darkened,
three photos a row. Prints each head's agreement (IoU) with U²-Net-p's mask of each photo
(examples/masks/), a reference model's answer, not ground truth.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

from colorseg.files import save_png
from colorseg.image_io import load_image
from colorseg.paths import DEFAULT_WEIGHTS_DIR, REPO_ROOT
from colorseg.segmentation.explain import HEAD_COLOURS
from colorseg.segmentation.inference import load_segmenter

TILE = (400, 280)
TINT = np.array(HEAD_COLOURS["soft_iou"], dtype=np.float32)


def tile(segmenter, path: Path) -> np.ndarray:
    rgb = load_image(path).rgb
    prediction = segmenter.predict(rgb, task="objects")
    reference = REPO_ROOT / "examples" / "masks" / f"{path.stem}.png"
    if reference.is_file():
        target = np.asarray(Image.open(reference).convert("L")) > 127
        agreement = {
            head: float((mask & target).sum() / max((mask | target).sum(), 1))
            for head, mask in (("cross-entropy", prediction.mask_cross_entropy), ("soft IoU", prediction.mask_soft_iou))
        }
        print(f"{path.stem}: agreement with U²-Net-p " + ", ".join(f"{h} {v:.3f}" for h, v in agreement.items()))
    mask = prediction.mask_soft_iou
    picture = rgb.astype(np.float32)
    picture[mask] = 0.5 * picture[mask] + 0.5 * TINT
    picture[~mask] *= 0.5
    return np.asarray(Image.fromarray(picture.astype(np.uint8)).resize(TILE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots" / "any_object_farm_photos.png")
    args = parser.parse_args()
    segmenter = load_segmenter(DEFAULT_WEIGHTS_DIR)
    tiles = [tile(segmenter, path) for path in sorted((REPO_ROOT / "examples").glob("*.webp"))]
    rows = [np.concatenate(tiles[i : i + 3], axis=1) for i in range(0, len(tiles) - len(tiles) % 3, 3)]
    save_png(np.concatenate(rows, axis=0), args.out)
    print(args.out)


if __name__ == "__main__":
    main()
