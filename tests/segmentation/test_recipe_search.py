"""benchmarks/seg_recipe_search.py on tiny synthetic sources: folds move other sequences into
validation, and every recipe x fold is scored."""

import json
import subprocess
import sys
from pathlib import Path

from seg_fixtures import make_davis, make_flower_labels, make_weizmann

from colorseg.segmentation.data import select_split

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "seg_recipe_search.py"
TINY = (
    "--seg-image-size 32 --seg-epochs 1 --seg-samples-per-source 4 --seg-source-samples none "
    "--seg-batch-size 4 --seg-head-recipe assignment --threads 1"
)


def test_recipe_search_runs_every_fold(tmp_path):
    data = tmp_path / "data"
    make_davis(data / "davis2016", sequences=("bear", "boat", "camel", "cows", "swan", "dog", "goat", "kid"))
    make_flower_labels(data / "oxford17flowers")
    make_weizmann(data / "weizmann_horse_db")
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, str(SCRIPT), str(data), str(out), "--shrink", "--folds", "A", "0", "--recipe", f"tiny={TINY}"],
        check=True,
        capture_output=True,
        timeout=600,
    )

    def held_out(davis: Path) -> set[str]:
        return {
            p.parent.name.rsplit("-", 1)[0] if davis.name.startswith("davis_fold") else p.parent.name
            for p in (pair.image for pair in select_split(davis, "val"))
        }

    assert held_out(out / "data" / "davis2016") != held_out(out / "davis_fold_0")
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["folds"]["tiny"]) == {"A", "0"}
    for scores in summary["folds"]["tiny"].values():
        assert all(0 <= scores[task] <= 1 for task in ("objects", "horses", "flowers"))
