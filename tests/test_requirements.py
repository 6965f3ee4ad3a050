"""Every third-party package the code imports is declared, so that a fresh virtual environment
with README's install runs README's test command.

A package that merely comes along with another one (requests came with huggingface_hub < 1)
disappears when that one changes; only the machine's own Python then still has it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("colorseg", "tests", "benchmarks")
SCRIPTS = ("app.py", "train_all.py")


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[#@]", requirement.strip(), maxsplit=1)[0]).lower()


def declared() -> set[str]:
    lines = [
        line for file in ("requirements.txt", "requirements-dev.txt") for line in (REPO / file).read_text().splitlines()
    ]
    return {_name(line) for line in lines if line.strip() and not line.lstrip().startswith("#")}


def _guarded(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside ``try: ... except ImportError``: optional by design."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(handler.type, ast.Name) and handler.type.id in ("ImportError", "ModuleNotFoundError")
            for handler in node.handlers
        ):
            lines |= {
                inner.lineno for statement in node.body for inner in ast.walk(statement) if hasattr(inner, "lineno")
            }
    return lines


def imported_modules() -> dict[str, str]:
    """Top-level third-party modules imported unconditionally -> a file that imports it."""
    files = [path for folder in FOLDERS for path in (REPO / folder).rglob("*.py")] + [REPO / s for s in SCRIPTS]
    local = {path.stem for path in files} | {"colorseg"}  # the package and the tests' own helper modules
    found: dict[str, str] = {}
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        optional = _guarded(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top not in sys.stdlib_module_names and top not in local and node.lineno not in optional:
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_every_imported_package_is_a_declared_requirement():
    distributions = importlib.metadata.packages_distributions()
    requirements = declared()
    missing = []
    for module, where in sorted(imported_modules().items()):
        # A module not installed here is taken to be its distribution's name (requests is requests).
        names = {_name(d) for d in distributions.get(module, [module])}
        if not names & requirements:
            missing.append(f"{module} (imported by {where}; distribution {', '.join(sorted(names))})")
    assert not missing, "imported but in no requirements file: " + "; ".join(missing)


def test_pyproject_declares_the_runtime_requirements():
    pyproject = (REPO / "pyproject.toml").read_text()
    runtime = {
        _name(line)
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    listed = {_name(item) for item in re.findall(r'"([^"]+)"', pyproject.split("dependencies = [", 1)[1].split("]")[0])}
    assert runtime == listed
