"""Score an ImageNet-body fine-tuning recipe on a fold of the *training* data, as the default was chosen.

    python benchmarks/seg_finetune_folds.py DATA [--fold 0] [--folds 3] [--epochs 10] [--views 4]
        [--first-trained-stage 5] [--encoder-lr-scale 0.2] [--lr 2e-3] [--size 320] [--threads 2]

DATA holds davis2016/, oxford17flowers/ and weizmann_horse_db/ (needs requirements-train.txt).
Only each source's training split is read: the validation split, on which the committed weights
are scored once, takes no part in choosing. The training split is cut into ``--folds`` folds —
DAVIS by sequence (frames of one sequence are near-duplicates: the i-th sequence in name order goes
to fold i mod k), the other sources by a hash of the file name — and the body is fine-tuned
(colorseg.segmentation.finetune, the recipe's other settings at their defaults) on all folds but
``--fold``. Prints one JSON line: the held-out fold's IoU per source, from the temporary head at the
training size, one view (a proxy: the committed weights are scored by ``python -m colorseg
evaluate`` at each photo's own resolution).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorseg.segmentation import data as seg_data  # noqa: E402
from colorseg.segmentation.efficientnet_lite import load_imagenet_weights  # noqa: E402
from colorseg.segmentation.finetune import FineTuneRecipe, fine_tune_body  # noqa: E402
from colorseg.segmentation.models import LiteDeepLabBody  # noqa: E402
from colorseg.segmentation.sources import DEFAULT_SOURCES, concatenate  # noqa: E402


def fold_of(source: str, name: str, sequences: list[str], folds: int) -> int:
    if source == "davis":
        return sequences.index(name.split("/")[0]) % folds
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % folds


def split(data: Path, size: int, fold: int, folds: int):
    train, held = {}, {}
    for source, folder in DEFAULT_SOURCES.items():
        tensors = seg_data.load_split_tensors(data / folder, "train", size)
        sequences = sorted({n.split("/")[0] for n in tensors.names})
        where = torch.tensor([fold_of(source, n, sequences, folds) == fold for n in tensors.names])
        train[source] = tensors.subset(torch.nonzero(~where).flatten())
        held[source] = tensors.subset(torch.nonzero(where).flatten())
    return concatenate(train), held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3)
    defaults = FineTuneRecipe()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--views", type=int, default=defaults.views)
    parser.add_argument("--first-trained-stage", type=int, default=defaults.first_trained_stage)
    parser.add_argument("--encoder-lr-scale", type=float, default=defaults.encoder_lr_scale)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    train, held = split(args.data, args.size, args.fold, args.folds)
    body = LiteDeepLabBody(defaults.variant)
    load_imagenet_weights(body.encoder, defaults.variant)
    recipe = FineTuneRecipe(
        epochs=args.epochs, views=args.views, first_trained_stage=args.first_trained_stage,
        encoder_lr_scale=args.encoder_lr_scale, lr=args.lr, eval_every=args.epochs,
    )  # fmt: skip
    history = fine_tune_body(
        body, train, held, recipe, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    )
    scores = {source: round(history[-1][f"val_{source}_iou"], 4) for source in held}
    settings = {k: v for k, v in vars(args).items() if k != "data"}
    print(json.dumps({**settings, "held_out_iou": scores, "seconds": round(time.perf_counter() - started)}))


if __name__ == "__main__":
    main()
