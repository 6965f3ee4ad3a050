"""The errors colorseg raises, and the hint that weights errors share.

Library code raises these and never exits or prints; the command-line entry points
(colorseg.cli) turn a :class:`ColorsegError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

REGENERATE_HINT = "python train_all.py"


class ColorsegError(RuntimeError):
    """Something the user can fix: bad data, weights or arguments. The message says what."""


class DataError(ColorsegError):
    """The data folder is missing, incomplete or not in a known layout."""


class WeightsError(ColorsegError):
    """A weight file is missing, damaged or does not match its description."""


class UsageError(ColorsegError):
    """Arguments that cannot work together, or ask for what this machine lacks (e.g. CUDA)."""


def regenerate_hint(command: str = REGENERATE_HINT) -> str:
    """The sentence every weights error ends with: how to make the files again."""
    return f"regenerate it with `{command}`"
