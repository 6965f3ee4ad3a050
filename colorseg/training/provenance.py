"""What weights and reports record about how they were made: library versions, the command
(with no machine paths), and content digests of the data."""

from __future__ import annotations

import hashlib
import platform
import shlex
import sys
from pathlib import Path

import torch

from colorseg.paths import REPO_ROOT


def names_digest(names: list[str]) -> str:
    """sha256 of a sorted list of file names: identifies a data set's content without a path."""
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def tensors_digest(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' bytes in order: identifies loaded data by content, not by path."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import numpy
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
    }


def portable_argv(argv: list[str]) -> list[str]:
    """``argv`` fit for committed JSON: absolute paths become repository-relative, or just
    their last component when outside the checkout (``--flag=/a/b`` too). No machine path
    is ever recorded."""

    def portable(token: str) -> str:
        flag, equals, value = token.rpartition("=") if token.startswith("--") else ("", "", token)
        path = Path(value)
        if path.is_absolute():
            resolved = path.resolve()
            value = str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else path.name
        return f"{flag}{equals}{value}"

    return [portable(token) for token in argv]


def command_line() -> str:
    """The command that is running now, to record how weights were made (no machine paths)."""
    return shlex.join(["python", *portable_argv(sys.argv)])
