"""The errors colorseg raises for bad input files, and the hint they share.

Both are ``RuntimeError`` so that a command-line entry point can catch them and print one
line instead of a traceback.
"""

from __future__ import annotations

REGENERATE_HINT = "python train_all.py"


class DataError(RuntimeError):
    """The data folder is missing, incomplete or not in a known layout."""


class WeightsError(RuntimeError):
    """A weight file is missing, damaged or does not match its description."""


def regenerate_hint(command: str = REGENERATE_HINT) -> str:
    """The sentence every weights error ends with: how to make the files again."""
    return f"regenerate it with `{command}`"
