"""Every committed binary file is routed through Git LFS by .gitattributes.

The Hugging Face Hub refuses a `git push` whose binary files are plain git blobs ("Your push
was rejected because it contains binary files"). The repository's history keeps its binaries as
plain blobs (CI clones need real weight files without git-lfs), but .gitattributes must cover
every binary type, so that a migrated copy (README, "Hugging Face Space") and every new binary
go through LFS. Checked with git itself: `git check-attr filter` must say `lfs`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Binary whatever their first bytes look like (a PNG's header has NUL bytes anyway; this catches
# an empty or truncated file of a binary type).
BINARY_SUFFIXES = {
    ".safetensors",
    ".pt",
    ".pth",
    ".bin",
    ".ckpt",
    ".onnx",
    ".h5",
    ".npy",
    ".npz",
    ".pkl",
    ".pickle",
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".ico",
    ".zip",
    ".gz",
    ".tgz",
    ".bz2",
    ".xz",
    ".zst",
    ".7z",
    ".tar",
    ".whl",
    ".pdf",
    ".mp4",
    ".webm",
}
# Must stay text: the Space reads README.md's front matter, the app reads the JSON descriptions.
TEXT_FILES = ["README.md", "app.py", "requirements.txt", "weights/seg_body.json", "reports/training_report.json"]


def _git(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=True, **kwargs)


def in_git_checkout(root: Path) -> bool:
    if shutil.which("git") is None:
        return False
    try:
        top = _git(root, "rev-parse", "--show-toplevel", text=True).stdout.strip()
    except subprocess.CalledProcessError:
        return False
    return Path(top).resolve() == root.resolve()


def is_binary(path: Path) -> bool:
    """Git's own heuristic (a NUL byte in the first 8000 bytes), or a known binary suffix."""
    if path.suffix.lower() in BINARY_SUFFIXES:
        return True
    with open(path, "rb") as handle:
        return b"\0" in handle.read(8000)


def filter_attributes(root: Path, paths: list[str]) -> dict[str, str]:
    """`git check-attr filter` for each path: "lfs", "unspecified", ..."""
    if not paths:
        return {}
    output = _git(root, "check-attr", "-z", "--stdin", "filter", input="\0".join(paths).encode()).stdout
    fields = output.decode().split("\0")
    return {fields[i]: fields[i + 2] for i in range(0, len(fields) - 2, 3)}


def binaries_not_in_lfs(root: Path) -> list[str]:
    """Committed (tracked) binary files whose filter attribute is not lfs."""
    tracked = [p for p in _git(root, "ls-files", "-z").stdout.decode().split("\0") if p]
    binaries = [p for p in tracked if (root / p).is_file() and is_binary(root / p)]
    return sorted(path for path, value in filter_attributes(root, binaries).items() if value != "lfs")


needs_checkout = pytest.mark.skipif(not in_git_checkout(REPO), reason="not a git checkout")


@needs_checkout
def test_every_committed_binary_goes_through_lfs():
    uncovered = binaries_not_in_lfs(REPO)
    assert not uncovered, f"add a pattern for these to .gitattributes (filter=lfs): {uncovered}"


@needs_checkout
def test_the_repository_has_binaries_and_all_of_them_are_lfs():
    tracked = [p for p in _git(REPO, "ls-files", "-z").stdout.decode().split("\0") if p]
    binaries = [p for p in tracked if (REPO / p).is_file() and is_binary(REPO / p)]
    assert "weights/seg_body.safetensors" in binaries and any(p.startswith("examples/") for p in binaries)
    assert set(filter_attributes(REPO, binaries).values()) == {"lfs"}


@needs_checkout
def test_text_files_stay_out_of_lfs():
    assert set(filter_attributes(REPO, TEXT_FILES).values()) == {"unspecified"}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_an_uncovered_binary_is_reported(tmp_path):
    """The check itself works: a committed binary of a type .gitattributes does not name fails it."""
    _git(tmp_path, "init", "-q")
    shutil.copy(REPO / ".gitattributes", tmp_path / ".gitattributes")
    (tmp_path / "weights.safetensors").write_bytes(b"\0" * 16)
    (tmp_path / "blob.dat").write_bytes(b"header\0\1\2")
    (tmp_path / "PHOTO.JPG").write_bytes(b"")  # binary by its suffix, even empty
    (tmp_path / "notes.txt").write_text("plain text\n")
    _git(tmp_path, "add", ".")
    assert binaries_not_in_lfs(tmp_path) == ["blob.dat"]
