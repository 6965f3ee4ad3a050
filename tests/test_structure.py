"""The package's shape, checked: imports only go down the layers, the two halves stay apart, every
training stage runs through training.fit, and no module grows past 300 lines."""

import ast
import inspect
from pathlib import Path

import pytest
from support import REPO

PACKAGE = REPO / "colorseg"
# Lower layers never import higher ones: shared basics, then shared machinery, then the two
# halves, then what people run (the app, the command line, deployment).
LAYERS = {
    "errors": 0, "paths": 0, "files": 0,
    "registry": 1, "image_io": 1, "replay": 1, "training": 1, "weights": 1,
    "colour": 2, "segmentation": 2,
    "app": 3, "cli": 3, "deploy": 3, "evaluate": 3, "__main__": 3,
}  # fmt: skip
HALVES = {"colour", "segmentation"}
MAX_LINES = 300


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _part(path_or_name: str) -> str:
    return path_or_name.split(".")[0]


def _imports(path: Path) -> set[str]:
    """Every colorseg module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("colorseg"):
            names = [node.module] if node.module != "colorseg" else [f"colorseg.{a.name}" for a in node.names]
            found |= {name.removeprefix("colorseg.") for name in names}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("colorseg.") for a in node.names if a.name.startswith("colorseg.")}
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down_the_layers(path):
    source = _part(str(path.relative_to(PACKAGE).with_suffix("")).replace("/", "."))
    for target in _imports(path):
        part = _part(target)
        assert part in LAYERS, f"{path.name} imports colorseg.{target}, which no layer names"
        assert LAYERS[part] <= LAYERS[source], f"{source} (layer {LAYERS[source]}) imports {target} ({LAYERS[part]})"
        assert not (source in HALVES and part in HALVES and part != source), f"{source} imports the other half"


def test_the_structure_test_catches_an_upward_import(tmp_path):
    upward = tmp_path / "weights.py"
    upward.write_text("from colorseg.colour.models import COLOUR_MODEL_NAMES\n")
    assert _imports(upward) == {"colour.models"} and LAYERS["colour"] > LAYERS["weights"]


def test_every_package_part_has_a_layer_and_few_modules_sit_at_the_top():
    parts = {p.relative_to(PACKAGE).with_suffix("").parts[0] for p in _modules()} - {"__init__"}
    assert parts <= set(LAYERS)
    top = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(top) <= 6, top


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_300_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_train_all_is_a_thin_entry_point():
    assert len((REPO / "train_all.py").read_text().splitlines()) <= 60


def test_every_training_stage_runs_through_fit():
    # One epoch loop: the stages build a training.Stage and hand it to training.fit; none loops
    # over epochs itself.
    from colorseg.colour import train as colour_train
    from colorseg.segmentation import finetune, heads
    from colorseg.segmentation import train as seg_train
    from colorseg.training import loop

    stages = [colour_train.train_colour_net, seg_train.train_body, finetune.fine_tune_body, heads.train_head]
    for function in stages:
        source = inspect.getsource(function)
        assert "fit(" in source and "Stage(" in source, function.__name__
        assert "for epoch in" not in source, f"{function.__name__} keeps an epoch loop of its own"
    for path in _modules():
        if path != Path(loop.__file__):
            assert "for epoch in range(" not in path.read_text(), f"{path.name} loops over epochs"
