"""Which files of this repository a Hugging Face Space gets (``python -m colorseg deploy-space``
uploads them; see :mod:`colorseg.deploy.space`).

In a git checkout, the tracked files (so nothing ``.gitignore`` excludes and nothing
untracked); elsewhere, every file under the repository root that ``.gitignore`` and the
built-in list below do not exclude. Never: local data, training runs, artifacts, caches,
tests, benchmarks, CI scripts and git's own files (``.gitattributes`` excepted).
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from pathlib import Path

from colorseg.paths import REPO_ROOT  # stdlib only, like this module

# Top-level folders and files a Space never needs (or must never get): local data and training
# outputs, development-only code, CI. Matched against the first path component.
EXCLUDED_TOP = {
    "data",
    "runs",
    "artifacts",
    "shared",
    ".ci",
    ".github",
    "tests",
    "benchmarks",
    "requirements-dev.txt",
}
# Matched against every path component: caches, virtual environments, git's own files.
EXCLUDED_PARTS = {
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".cache",
    ".gradio",
    ".ipynb_checkpoints",
    ".venv",
    "venv",
    ".git",
    "node_modules",
    ".DS_Store",
}
EXCLUDED_NAME_PATTERNS = ("*.pyc", "*.pyo", "*.tmp", "*.log", ".git*")
KEPT_GIT_FILES = {".gitattributes"}  # the Space's git needs it: which file types are LFS


def is_excluded(path: str) -> bool:
    """True when the repository-relative POSIX ``path`` is never part of a Space."""
    parts = path.split("/")
    if parts[0] in EXCLUDED_TOP:
        return True
    if any(part in EXCLUDED_PARTS for part in parts):
        return True
    name = parts[-1]
    if name in KEPT_GIT_FILES:
        return False
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED_NAME_PATTERNS)


def _git_tracked(root: Path) -> list[str] | None:
    """Tracked files of the git checkout whose top level is ``root``; None when it is not one."""
    try:
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if Path(top).resolve() != root.resolve():
            return None
        listing = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [name for name in listing.decode("utf-8", "surrogateescape").split("\0") if name]


def _gitignore_patterns(root: Path) -> list[str]:
    path = root / ".gitignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines())
    return [line for line in lines if line and not line.startswith(("#", "!"))]


def _gitignored(path: str, patterns: list[str]) -> bool:
    """A small subset of .gitignore matching (enough for this repository's): ``name``, ``*.ext``,
    ``dir/`` (any depth) and ``/anchored``; used only outside a git checkout."""
    parts = path.split("/")
    for pattern in patterns:
        directory_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if pattern.startswith("/") or "/" in pattern:  # anchored at the root
            anchored = pattern.lstrip("/")
            depth = anchored.count("/") + 1
            prefixes = ["/".join(parts[:i]) for i in range(depth, len(parts) + (0 if directory_only else 1))]
            if any(fnmatch.fnmatch(prefix, anchored) for prefix in prefixes):
                return True
            continue
        candidates = parts[:-1] if directory_only else parts
        if any(fnmatch.fnmatch(part, pattern) for part in candidates):
            return True
    return False


def _walk(root: Path) -> list[str]:
    patterns = _gitignore_patterns(root)
    found = []
    for directory, subdirectories, files in os.walk(root):
        relative = Path(directory).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        subdirectories[:] = sorted(
            d
            for d in subdirectories
            if not is_excluded(prefix + d + "/x") and not _gitignored(prefix + d + "/x", patterns)
        )
        found += [prefix + name for name in files if not _gitignored(prefix + name, patterns)]
    return found


def space_files(root: str | Path = REPO_ROOT) -> list[str]:
    """Repository-relative POSIX paths of the files a Space gets, sorted.

    Tracked files in a git checkout, else a walk that honours .gitignore; in both cases minus
    what :func:`is_excluded` says a Space never needs. Tracked files deleted from the working
    tree are left out (the upload reads the working tree).
    """
    root = Path(root)
    candidates = _git_tracked(root)
    if candidates is None:
        candidates = _walk(root)
    return sorted(
        path
        for path in set(candidates)
        if not is_excluded(path) and (root / path).is_file() and not (root / path).is_symlink()
    )
