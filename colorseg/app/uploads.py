"""Which files a request may name, and the photo input that enforces it.

The API reads only files inside gradio's upload/cache folder or the app's own examples,
and refuses anything else with one message that says nothing of the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio_client import utils as gr_client_utils

from colorseg.image_io import ImageLoadError, LoadedImage, load_image, load_mask

# The one answer to any file path that was not uploaded to this app: the same words whether
# the path exists or not, and nothing of the path itself.
REFUSED_PATH = "This app can only read files uploaded to this app: upload the photo (or mask) instead."
NO_PHOTO = "No photo yet: upload, paste or take one, or click an example below."


class ReadableFiles:
    """The files a request may name: what gradio stored for this app (uploads, data: URLs it
    decoded, examples it cached), all under its upload/cache folder, and the example files themselves.

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

    def folder_list(self) -> list[Path]:
        # Read at every call: GRADIO_TEMP_DIR may be set after import (tests do), and the Blocks' own
        # cache folder is inside it.
        return [Path(os.path.realpath(gr.utils.get_upload_folder())), *self.folders]

    def allows(self, path: str | os.PathLike) -> bool:
        try:
            resolved = Path(os.path.realpath(os.fspath(path)))
        except (TypeError, ValueError, OSError):
            return False
        if resolved in self.examples:
            return True
        return any(resolved != folder and resolved.is_relative_to(folder) for folder in self.folder_list())

    def check(self, path: str | None) -> str | None:
        if path and not self.allows(path):
            raise gr.Error(REFUSED_PATH)
        return path


READABLE = ReadableFiles()  # the app's rule: gradio's upload folder, and examples as tabs list them


def read_photo(image: str | None, readable: ReadableFiles) -> LoadedImage:
    """Decode an uploaded photo (any mode, EXIF, size cap) after checking that it may be read."""
    if not image:
        raise gr.Error(NO_PHOTO)
    readable.check(image)
    try:
        return load_image(image)
    except ImageLoadError as error:
        raise gr.Error(str(error)) from None


def read_mask(path: str | None, size: tuple[int, int], readable: ReadableFiles) -> Any:
    """A ground-truth mask resized to ``size`` (width, height), or None when none was given."""
    if not path:
        return None
    readable.check(path)
    try:
        return load_mask(path, size)
    except ImageLoadError as error:
        raise gr.Error(f"Ground-truth mask: {error}") from None


def photo_input(readable: ReadableFiles = READABLE, **kwargs: Any) -> gr.Image:
    """A gr.Image input whose uploads reach the handler as the uploaded file, undecoded.

    gr.Image opens uploads itself and fails on a non-image file with a bare "Error" before
    any handler runs; colorseg.image_io decodes instead (every mode, EXIF, size cap) and
    turns such files into a sentence the user can act on. (The override is set on the
    instance: subclassing gr.Image would make gradio write a .pyi stub beside this module.)
    """
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    decode = image.preprocess
    # gradio copies a payload's file into its cache before preprocess runs, from wherever the
    # payload says (a path in its temp folder or working directory, even a URL, which it would
    # download): the copy itself must be refused. Examples pass, being readable.
    copy, async_copy = image.move_resource_to_block_cache, image.async_move_resource_to_block_cache

    def checked(path: Any) -> None:
        if path is not None and (gr_client_utils.is_http_url_like(str(path)) or not readable.allows(path)):
            raise gr.Error(REFUSED_PATH)

    def move_resource_to_block_cache(path: Any) -> Any:
        checked(path)
        return copy(path)

    async def async_move_resource_to_block_cache(path: Any) -> Any:
        checked(path)
        return await async_copy(path)

    def undecoded(payload: Any) -> Any:  # gradio's ImageData in, a file path out
        # Only a path inside this app's upload/cache folders (or an example) goes on; the
        # handlers check again, for callers of the functions themselves.
        if payload is None or payload.path is None:
            if payload is not None and not (payload.url or "").startswith("data:"):
                raise gr.Error(REFUSED_PATH)  # a bare URL: never fetched or opened
            return readable.check(decode(payload))  # data: URLs, which gr.Image turns into a file
        return readable.check(str(payload.path))

    image.move_resource_to_block_cache = move_resource_to_block_cache
    image.async_move_resource_to_block_cache = async_move_resource_to_block_cache
    image.preprocess = undecoded
    return image
