"""One registry for every buildable module, so weights can be rebuilt from a name plus kwargs.

Loading a checkpoint never unpickles code: the JSON beside the safetensors names the
architecture and its constructor arguments, and ``create_model`` rebuilds it here. That JSON
is data anyone can edit, so every registered module declares the values each of its
constructor's fields may take, and ``create_model`` refuses any other before building:
``kernel: -1`` would crash the app's start, ``num_filters: 100000`` allocate gigabytes.

    @register_model({"kernel": range(1, 10), "backbone": ("mobilenet_v3_large", "resnet50")}, kind=SEG_BODY)
    class MyNet(nn.Module): ...

A field's declaration is a ``range`` (an int in it), a tuple (one of its values, of the same
type), a compiled regular expression (a string it matches whole) or a one-element list of one
of those (a list or tuple of up to :data:`MAX_LIST` such values). ``kind`` (:data:`COLOUR_NET`,
:data:`SEG_BODY` or :data:`SEG_HEAD`) says which weight files may hold the module (see
colorseg.weights.load_module's ``expect``): ``seg_body`` any segmentation body, and so on.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

# range: an int in it; tuple: one of its values; re.Pattern: a string it matches; [spec]: a list of such.
Allowed = range | tuple | re.Pattern | list
MAX_LIST = 32
# What a registered module is, and so which weight file may hold it.
COLOUR_NET, SEG_BODY, SEG_HEAD = "colour net", "segmentation body", "segmentation head"
KINDS = (COLOUR_NET, SEG_BODY, SEG_HEAD)

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_FIELDS: dict[str, dict[str, Allowed]] = {}
_KINDS: dict[str, str] = {}
# Modules whose classes carry ``@register_model``; imported on first use, never at import time,
# so that a model module may import this one without a cycle (as timm's ``_registry`` does).
MODEL_MODULES = ("colorseg.colour.models", "colorseg.segmentation.models")

T = TypeVar("T", bound=Callable[..., nn.Module])


def register_model(fields: Mapping[str, Allowed], *, kind: str | None = None) -> Callable[[T], T]:
    """Register a class or factory under its ``__name__``, with the values each constructor field
    may take (every field of its signature must be declared) and its ``kind``."""
    if not isinstance(fields, Mapping) or kind not in KINDS:
        raise TypeError(
            "register_model needs the constructor fields' allowed values and the module's kind: "
            "@register_model({...}, kind=SEG_BODY)"
        )

    def register(builder: T) -> T:
        name = builder.__name__
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        parameters = set(inspect.signature(builder).parameters)
        if parameters != set(fields):
            raise TypeError(
                f"{name}: declare the allowed values of exactly its constructor fields "
                f"{sorted(parameters)}, not {sorted(fields)}"
            )
        _BUILDERS[name], _FIELDS[name], _KINDS[name] = builder, dict(fields), kind
        return builder

    return register


def list_models(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Registered names matching the shell-style ``pattern`` (and of ``kind``, when given), sorted."""
    _import_all_models()
    return sorted(name for name in _BUILDERS if fnmatch.fnmatchcase(name, pattern) and kind in (None, _KINDS[name]))


def allows(value: Any, allowed: Allowed) -> bool:
    """Whether ``value`` is one that the declaration ``allowed`` admits (see the module docstring)."""
    if isinstance(allowed, range):
        return type(value) is int and value in allowed  # bool is an int, but never a size
    if isinstance(allowed, tuple):
        return any(type(value) is type(choice) and value == choice for choice in allowed)
    if isinstance(allowed, re.Pattern):
        return isinstance(value, str) and allowed.fullmatch(value) is not None
    [inner] = allowed  # a list in JSON, a tuple as often in Python (atrous rates, say)
    return isinstance(value, (list, tuple)) and len(value) <= MAX_LIST and all(allows(item, inner) for item in value)


def describe(allowed: Allowed) -> str:
    if isinstance(allowed, range):
        return f"an integer from {allowed.start} to {allowed.stop - 1}"
    if isinstance(allowed, tuple):
        return "one of " + ", ".join(repr(choice) for choice in allowed)
    if isinstance(allowed, re.Pattern):
        return f"a string matching {allowed.pattern}"
    return f"a list of at most {MAX_LIST} values, each {describe(allowed[0])}"


def check_fields(values: Mapping[str, Any], declared: Mapping[str, Allowed], what: str) -> None:
    """ValueError naming the first of ``values`` that ``declared`` does not admit (unknown ones too)."""
    for key, value in values.items():
        if key not in declared:
            raise ValueError(f"{what} has no field {key!r}; it has: {', '.join(declared) or 'none'}")
        if not allows(value, declared[key]):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
            if isinstance(declared[key], tuple):  # a name from a list, as "unknown backbone 'vgg'"
                raise ValueError(f"{what}: unknown {key} {shown}; it must be {describe(declared[key])}")
            raise ValueError(f"{what}: {key}={shown} is not allowed; it must be {describe(declared[key])}")


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model. Unknown names raise KeyError listing the known ones; constructor
    values outside what the model declares raise ValueError before anything is built."""
    _import_all_models()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None
    check_fields(kwargs, _FIELDS[name], name)
    return builder(**kwargs)


def _import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
