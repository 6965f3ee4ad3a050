"""One registry for every buildable module, so weights can be rebuilt from a name plus kwargs.

Loading a checkpoint never unpickles code: the JSON beside the safetensors names the
architecture and its constructor arguments, and ``create_model`` rebuilds it here.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}

T = TypeVar("T", bound=Callable[..., nn.Module])


def register_model(builder: T) -> T:
    """Register a class or factory under its ``__name__``."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = builder
    return builder


def list_models() -> list[str]:
    _import_all_models()
    return sorted(_BUILDERS)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; unknown names raise an error listing the known ones."""
    _import_all_models()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        known = ", ".join(sorted(_BUILDERS))
        raise KeyError(f"unknown model {name!r}; known models: {known}") from None
    return builder(**kwargs)


def _import_all_models() -> None:
    # Model modules register themselves on import; import them lazily so that
    # ``registry`` itself has no dependency on any model file.
    from colorseg import colour_models, seg_models  # noqa: F401
