"""Which files a request may name, and the photo input that enforces it.

The API reads only files inside gradio's upload/cache folder or the app's own examples,
and refuses anything else with one message that says nothing of the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
from gradio_client import utils as gr_client_utils

from colorseg.image_io import ImageLoadError, LoadedImage, load_image, load_mask

# The one answer to any file path that was not uploaded to this app: the same words whether
# the path exists or not, and nothing of the path itself.
REFUSED_PATH = "This app can only read files uploaded to this app: upload the photo (or mask) instead."
NO_PHOTO = "No photo yet: upload, paste or take one, or click an example below."
INLINE_PICTURE = (
    "This app takes pictures as uploaded files only, not inline as data: URLs: upload the photo "
    "(the browser and gradio_client's handle_file do)."
)


def user_error(message: str) -> gr.Error:
    """The error to raise for what a user (or API caller) got wrong: no photo, a file that is not a
    picture, a path this app does not read. gradio shows the message either way, but for a plain
    gr.Error it also prints a traceback to the server's log (gradio/queueing.py and routes.py:
    ``if not isinstance(e, Error) or e.print_exception: traceback.print_exc()``), where such
    expected mistakes would bury the tracebacks of real faults."""
    return gr.Error(message, print_exception=False)


class ReadableFiles:
    """The files a request may name: what gradio stored for this app (uploads, examples it
    cached), all under its upload/cache folder, and the example files themselves.

    gradio checks paths only of payloads that carry its FileData marker; an API caller can send
    {"path": "/etc/..."} without it and the handler would open any file the server can read.
    Paths are resolved (symlinks and ..) before the check and checked before anything opens them.
    """

    def __init__(self, examples: Iterable[Path] = (), folders: Iterable[Path] = ()):
        self.examples: set[Path] = set()
        self.folders = [Path(os.path.realpath(folder)) for folder in folders]  # beyond gradio's own
        self.add_examples(examples)

    def add_examples(self, examples: Iterable[str | Path | None]) -> None:
        self.examples |= {Path(os.path.realpath(p)) for p in examples if p}
        self.examples |= {Path(os.path.abspath(p)) for p in examples if p}  # as a URL names them

    def folder_list(self) -> list[Path]:
        # Read at every call: GRADIO_TEMP_DIR may be set after import (tests do), and the Blocks' own
        # cache folder is inside it.
        return [Path(os.path.realpath(gr.utils.get_upload_folder())), *self.folders]

    def allows(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` is a file (not a folder: gradio would record it as a file it made and its
        cache clean-up would fail on it) inside these folders or an example, links resolved."""
        try:
            resolved = Path(os.path.realpath(os.fspath(path)))
            inside = resolved in self.examples or any(
                resolved != folder and resolved.is_relative_to(folder) for folder in self.folder_list()
            )
            return inside and resolved.is_file()
        except (TypeError, ValueError, OSError):
            return False

    def lexically_allows(self, path: str) -> bool:
        """Whether ``path``, as text (made absolute and its .. folded, no link followed), lies in one
        of these folders or is an example: nothing about ``path`` is looked up on disk, so the answer
        and its timing say nothing of what exists. Weaker than :meth:`allows` (a link inside a folder
        passes): a first gate, before a check that resolves links."""
        if not path or "\0" in path:
            return False
        candidate = Path(os.path.abspath(path))  # text only: the working directory and the path's own parts
        if candidate in self.examples:
            return True
        folders = {
            form
            for folder in (gr.utils.get_upload_folder(), *self.folders)
            for form in (Path(os.path.abspath(folder)), Path(os.path.realpath(folder)))
        }
        return any(candidate != folder and candidate.is_relative_to(folder) for folder in folders)

    def check(self, path: str | None) -> str | None:
        if path and not self.allows(path):
            raise user_error(REFUSED_PATH)
        return path


READABLE = ReadableFiles()  # the app's rule: gradio's upload folder, and examples as tabs list them


def read_photo(image: str | None, readable: ReadableFiles) -> LoadedImage:
    """Decode an uploaded photo (any mode, EXIF, size cap) after checking that it may be read."""
    if not image:
        raise user_error(NO_PHOTO)
    readable.check(image)
    try:
        return load_image(image)
    except ImageLoadError as error:
        raise user_error(str(error)) from None


def read_mask(path: str | None, size: tuple[int, int], readable: ReadableFiles) -> Any:
    """A ground-truth mask resized to ``size`` (width, height), or None when none was given."""
    if not path:
        return None
    readable.check(path)
    try:
        return load_mask(path, size)
    except ImageLoadError as error:
        raise user_error(f"Ground-truth mask: {error}") from None


def photo_input(readable: ReadableFiles = READABLE, **kwargs: Any) -> gr.Image:
    """A gr.Image input whose uploads reach the handler as the uploaded file, undecoded.

    gr.Image opens uploads itself and fails on a non-image file with a bare "Error" before
    any handler runs; colorseg.image_io decodes instead (every mode, EXIF, size cap) and
    turns such files into a sentence the user can act on.
    """
    return files_only(gr.Image(type="filepath", image_mode=None, **kwargs), readable)


ImageInput = TypeVar("ImageInput", gr.Image, gr.ImageSlider)


def files_only(component: ImageInput, readable: ReadableFiles = READABLE) -> ImageInput:
    """Make an image input (gr.Image, gr.ImageSlider, type "filepath") hand its handler the paths of
    files this app may read, and never decode or fetch a picture itself.

    gradio's own preprocess decodes a picture sent inline as a data: URL before any handler can
    check it: a 657 kB PNG declaring 13000 x 13000 pixels cost 2 GB per request. The browser and
    gradio_client send every picture as an upload, so data: URLs are refused, as are bare URLs.
    gradio also copies a payload's file into its cache before preprocess runs, from wherever the
    payload says (a path in its temp folder or working directory, even a URL, which it would
    download): the copy itself must be refused. (The overrides are set on the instance:
    subclassing would make gradio write a .pyi stub beside this module.)
    """
    copy, async_copy = component.move_resource_to_block_cache, component.async_move_resource_to_block_cache

    def checked(path: Any) -> None:
        if path is not None and (gr_client_utils.is_http_url_like(str(path)) or not readable.allows(path)):
            raise user_error(REFUSED_PATH)

    def move_resource_to_block_cache(path: Any) -> Any:
        checked(path)
        return copy(path)

    async def async_move_resource_to_block_cache(path: Any) -> Any:
        checked(path)
        return await async_copy(path)

    def path_of(payload: Any) -> str | None:  # gradio's ImageData in, a checked file path out
        if payload is None:
            return None
        if (payload.url or "").startswith("data:"):
            raise user_error(INLINE_PICTURE)
        if payload.path is None:
            raise user_error(REFUSED_PATH)  # a bare URL: never fetched or opened
        # Only a path inside this app's upload/cache folders (or an example) goes on; the
        # handlers check again, for callers of the functions themselves.
        return readable.check(str(payload.path))

    def undecoded(payload: Any) -> Any:
        if isinstance(component, gr.ImageSlider):  # two pictures: (before, after)
            return None if payload is None or payload.root is None else tuple(path_of(p) for p in payload.root)
        return path_of(payload)

    component.move_resource_to_block_cache = move_resource_to_block_cache
    component.async_move_resource_to_block_cache = async_move_resource_to_block_cache
    component.preprocess = undecoded
    return component
