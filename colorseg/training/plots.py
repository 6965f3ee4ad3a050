"""Training-curve plots (matplotlib, headless), written atomically next to the reports."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from colorseg.files import atomic_write_bytes  # noqa: E402


def save_figure(figure, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(Path(path), buffer.getvalue())


def plot_curves(histories: dict[str, list[dict]], keys: list[tuple[str, str]], path: Path, title: str) -> None:
    """One panel per (key, label); one line per run. ``histories[name]`` rows have an "epoch" key."""
    figure, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6))
    axes = [axes] if len(keys) == 1 else list(axes)
    for axis, (key, label) in zip(axes, keys):
        for name, rows in histories.items():
            axis.plot([row["epoch"] for row in rows], [row[key] for row in rows], label=name)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle(title)
    save_figure(figure, path)
