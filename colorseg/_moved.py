"""Old flat module names -> their homes since the issue-10 layout (temporary).

``app.py`` and its tests still import the old names until the app split is merged; this
finder makes ``import colorseg.cifar`` return ``colorseg.colour.data`` (the same module
object, so monkeypatching either name patches both). Delete this file, and its import in
``colorseg/__init__.py``, once nothing imports an old name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "colorseg.cifar": "colorseg.colour.data",
    "colorseg.palette": "colorseg.colour.palette",
    "colorseg.colour_models": "colorseg.colour.models",
    "colorseg.colour_train": "colorseg.colour.train",
    "colorseg.colorize": "colorseg.colour.inference",
    "colorseg.colour_pipeline": "colorseg.colour.pipeline",
    "colorseg.layer_stats": "colorseg.colour.layer_stats",
    "colorseg.colour_explain": "colorseg.colour.explain",
    "colorseg.seg_data": "colorseg.segmentation.data",
    "colorseg.seg_models": "colorseg.segmentation.models",
    "colorseg.seg_losses": "colorseg.segmentation.losses",
    "colorseg.seg_train": "colorseg.segmentation.train",
    "colorseg.segment": "colorseg.segmentation.inference",
    "colorseg.seg_pipeline": "colorseg.segmentation.pipeline",
    "colorseg.seg_explain": "colorseg.segmentation.explain",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        """Nothing to run: the module was executed under its new name."""


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
