"""Helpers for the app's tests (not a test module): models with tiny random colour nets and
the stand-in segmenter of app_support, handed to the app instead of patching imports."""

from __future__ import annotations

from pathlib import Path

from app_support import FakeSegmenter, load_fake_segmenter, make_all_weights

from colorseg.app.models import Models, load_models
from colorseg.app.store import Context, PictureStore
from colorseg.app.uploads import ReadableFiles


def fake_models(weights_dir: Path) -> Models:
    """What load_models gives for ``weights_dir``, with the stand-in segmenter (see load_fake_segmenter)."""
    return load_models(weights_dir, "cpu", load_segmenter=load_fake_segmenter)


def fake_context(weights_dir: Path, pictures: Path, readable_folder: Path | None = None) -> Context:
    """A Context on tiny random weights (made in ``weights_dir`` if it is empty); requests may
    name files under ``readable_folder`` (tests write photos in pytest's temporary folders)."""
    if not any(Path(weights_dir).iterdir()):
        make_all_weights(weights_dir)
    folders = [readable_folder] if readable_folder else []
    return Context(fake_models(weights_dir), PictureStore(pictures), ReadableFiles(folders=folders))


__all__ = ["FakeSegmenter", "fake_context", "fake_models"]
