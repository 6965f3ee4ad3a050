"""Pictures out of the library: matplotlib figures as arrays, PNG files written atomically.

Shared by the colour and segmentation explainers, the training replay and the batch CLI,
which all hand uint8 arrays to the app or to disk.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image


def figure_to_array(figure: Figure) -> np.ndarray:
    """Render a matplotlib figure with Agg (no display, no pyplot state) to uint8 [H, W, 3]."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write uint8 [H, W], [H, W, 3] or [H, W, 4] (bool masks as 0/255) as a PNG, atomically
    and readable by all (see :func:`atomic_write`)."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 or bool picture, got dtype {array.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return atomic_write(path, buffer.getvalue())


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and os.replace,
    so a reader never sees half a file and an interrupted write leaves the old one. Mode
    0644: mkstemp makes 0600, which a web server or another user could not read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
