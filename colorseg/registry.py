"""One registry for every buildable module, so weights can be rebuilt from a name plus kwargs.

Loading a checkpoint never unpickles code: the JSON beside the safetensors names the
architecture and its constructor arguments, and ``create_model`` rebuilds it here.
"""

from __future__ import annotations

import fnmatch
import importlib
from typing import Callable, TypeVar

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
# Modules whose classes carry ``@register_model``; imported on first use, never at import time,
# so that a model module may import this one without a cycle (as timm's ``_registry`` does).
MODEL_MODULES = ("colorseg.colour.models", "colorseg.segmentation.models")

T = TypeVar("T", bound=Callable[..., nn.Module])


def register_model(builder: T) -> T:
    """Register a class or factory under its ``__name__``."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = builder
    return builder


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching the shell-style ``pattern``, sorted."""
    _import_all_models()
    return sorted(name for name in _BUILDERS if fnmatch.fnmatchcase(name, pattern))


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; unknown names raise an error listing the known ones."""
    _import_all_models()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None
    return builder(**kwargs)


def _import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
