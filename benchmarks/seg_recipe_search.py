"""Compare segmentation body recipes on several DAVIS folds, as the default recipe was chosen.

    python benchmarks/seg_recipe_search.py DATA OUT --recipe base="--seg-epochs 26 --seg-source-samples none" \\
        --recipe h50="" --folds A 0 13 --parallel 6 [--shrink]

DATA holds davis2016/, oxford17flowers/ and weizmann_horse_db/. DAVIS has only 16 sequences, so
the three of the fixed validation split (fold A) are a noisy judge of a recipe: fold S renames
every sequence to ``<name>-S`` before training, which moves a different three or four into the
validation split (the split hashes the sequence's name; colorseg.segmentation.data). Every
recipe x fold is a whole ``train_all.py --only segmentation`` run into OUT/<recipe>_<fold>/,
several at once (on a GPU they share it: the runs are launch-bound). ``--shrink`` first writes
smaller copies of the photos (DAVIS 320x180, JPEG quality 72-75) into OUT/data, so that the data
fit a device machine's upload; the images are resized to 224 px for training anyway.

Prints, for every recipe, each fold's validation IoU of the objects heads on DAVIS, the horses
heads on Weizmann and the flowers heads on flowers (the better of the two losses), and their
means; OUT/summary.json holds them. Nothing is written to weights/.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SCORED = {"objects": "davis", "horses": "horses", "flowers": "flowers"}  # task -> source it is judged on


def shrink(data: Path, out: Path) -> Path:
    """Smaller copies of the three sources (same layouts), for a size-limited upload."""
    for kind in ("JPEGImages", "Annotations"):
        for frame in sorted((data / "davis2016" / kind / "480p").glob("*/*")):
            target = out / "davis2016" / kind / "480p" / frame.parent.name / frame.name
            target.parent.mkdir(parents=True, exist_ok=True)
            image = Image.open(frame)
            if kind == "JPEGImages":
                image.convert("RGB").resize((320, 180), Image.BILINEAR).save(target, quality=72)
            else:
                image.resize((320, 180), Image.NEAREST).save(target, optimize=True)
    flowers, horses = data / "oxford17flowers", data / "weizmann_horse_db"
    for folder in ("images", "labels"):
        (out / "oxford17flowers" / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("rgb", "figure_ground"):
        (out / "weizmann_horse_db" / folder).mkdir(parents=True, exist_ok=True)
    for label in sorted((flowers / "labels").glob("*.png")):  # only labelled photos train or score
        shutil.copyfile(label, out / "oxford17flowers" / "labels" / label.name)
        photo = flowers / "images" / f"{label.stem}.jpg"
        Image.open(photo).convert("RGB").save(out / "oxford17flowers" / "images" / photo.name, quality=75)
    for mask in sorted((horses / "figure_ground").glob("*.jpg")):  # photos at their masks' size
        shutil.copyfile(mask, out / "weizmann_horse_db" / "figure_ground" / mask.name)
        photo = Image.open(horses / "rgb" / mask.name).convert("RGB").resize(Image.open(mask).size, Image.BILINEAR)
        photo.save(out / "weizmann_horse_db" / "rgb" / mask.name, quality=75)
    return out


def davis_fold(davis: Path, fold: str, out: Path) -> Path:
    """DAVIS with every sequence renamed ``<name>-<fold>`` (fold A: the folder itself)."""
    if fold == "A":
        return davis
    target = out / f"davis_fold_{fold}"
    if not target.is_dir():
        for kind in ("JPEGImages", "Annotations"):
            for sequence in sorted((davis / kind / "480p").iterdir()):
                shutil.copytree(sequence, target / kind / "480p" / f"{sequence.name}-{fold}")
    return target


def best_iou(weights: Path, task: str) -> float | None:
    """The better validation IoU of a task's two heads on the source it is judged on."""
    scores = []
    for path in weights.glob(f"seg_head_{task}_*.json"):
        scores.append(json.loads(path.read_text())["metrics"]["val"][SCORED[task]]["iou"])
    return max(scores) if scores else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--recipe", action="append", required=True, metavar="NAME=FLAGS", help="train_all.py flags")
    parser.add_argument("--folds", nargs="+", default=["A", "0", "13"])
    parser.add_argument("--parallel", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each run")
    parser.add_argument("--shrink", action="store_true", help="train on smaller copies of the photos (OUT/data)")
    args = parser.parse_args()
    data = shrink(args.data, args.out / "data") if args.shrink else args.data
    recipes = dict(spec.split("=", 1) for spec in args.recipe)
    jobs = []
    for name, flags in recipes.items():
        for fold in args.folds:
            run = args.out / f"{name}_{fold}"
            run.mkdir(parents=True, exist_ok=True)
            sources = [
                f"davis={davis_fold(data / 'davis2016', fold, args.out)}",
                f"flowers={data / 'oxford17flowers'}",
                f"horses={data / 'weizmann_horse_db'}",
            ]
            command = [
                sys.executable,
                str(REPO / "train_all.py"),
                "--only",
                "segmentation",
                "--threads",
                str(args.threads),
                "--weights-dir",
                str(run / "weights"),
                "--report-dir",
                str(run / "reports"),
                "--checkpoint-dir",
                str(run / "checkpoints"),
                "--seg-eval-every",
                "1000",
                "--seg-data",
                *sources,
                *shlex.split(flags),
            ]
            jobs.append((name, fold, run, command))
    running = []
    for job in jobs:
        if len(running) == args.parallel:
            running.pop(0).wait()
        log = open(job[2] / "log", "w")
        running.append(subprocess.Popen(job[3], stdout=log, stderr=subprocess.STDOUT))
    for process in running:
        process.wait()
    summary = {}
    for name, fold, run, _ in jobs:
        summary.setdefault(name, {})[fold] = {task: best_iou(run / "weights", task) for task in SCORED}
    for name, folds in summary.items():
        cells = []
        for task in SCORED:
            values = [f[task] for f in folds.values()]
            shown = " ".join("fail" if v is None else f"{v:.3f}" for v in values)
            mean = sum(values) / len(values) if None not in values else float("nan")
            cells.append(f"{task} {shown} (mean {mean:.3f})")
        print(f"{name}: " + "; ".join(cells))
    (args.out / "summary.json").write_text(json.dumps({"recipes": recipes, "folds": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
