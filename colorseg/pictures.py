"""Pictures out of the library: matplotlib figures as arrays, PNG files written atomically.

Shared by the colour and segmentation explainers, the training replay and the batch CLI,
which all hand uint8 arrays to the app or to disk.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from colorseg.files import atomic_write_bytes


def figure_to_array(figure: Figure) -> np.ndarray:
    """Render a matplotlib figure with Agg (no display, no pyplot state) to uint8 [H, W, 3]."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write uint8 [H, W], [H, W, 3] or [H, W, 4] (bool masks as 0/255) as a PNG, atomically
    with an ordinary file mode (see :func:`colorseg.files.atomic_write_bytes`)."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 or bool picture, got dtype {array.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
