"""Model registry: ``create_model(name, ...)`` and ``list_models()``.

Each architecture lives in its own module and registers its builder with ``@register_model``.
The modules are imported lazily (``_MODULES``), so importing the registry stays cheap and one
architecture's import error never hides the others.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

# name -> module that defines it. Adding an architecture = one line here.
_MODULES: dict[str, str] = {
    "bot": "reid_pipeline.models.bot",
    "agw": "reid_pipeline.models.agw",
    "dimn": "reid_pipeline.models.dimn",
    "pmm": "reid_pipeline.models.pmm",
    "fienet": "reid_pipeline.models.fienet",
    "wrimnet": "reid_pipeline.models.wrimnet",
}

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model builder under ``name``; duplicate names are refused."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS and _BUILDERS[name] is not fn:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = fn
        return fn

    return decorator


def list_models() -> list[str]:
    return sorted(_MODULES)


def _builder(name: str) -> Callable[..., nn.Module]:
    if name not in _MODULES:
        raise ValueError(f"unknown model {name!r}; expected one of {list_models()}")
    if name not in _BUILDERS:
        importlib.import_module(_MODULES[name])
    return _BUILDERS[name]


def model_options(name: str) -> set[str]:
    """The keyword options the builder of ``name`` accepts (``num_classes`` excluded).

    A builder that forwards ``**kwargs`` to its model class is looked through to that class's
    keyword-only ``__init__`` options (its return annotation names the class)."""
    builder = _builder(name)
    params = inspect.signature(builder).parameters
    options = {k for k, v in params.items() if v.kind is v.KEYWORD_ONLY}
    if any(v.kind is v.VAR_KEYWORD for v in params.values()):
        cls = typing.get_type_hints(builder).get("return")
        if isinstance(cls, type):
            init = inspect.signature(cls.__init__).parameters
            options |= {k for k, v in init.items() if v.kind is v.KEYWORD_ONLY}
    return options - {"num_classes"}


def create_model(name: str, *, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a registered model. ``kwargs`` are the builder's keyword-only options
    (``backbone``, ``pretrained``, architecture-specific switches)."""
    builder = _builder(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    try:
        return builder(num_classes=num_classes, **kwargs)
    except TypeError as exc:  # an unknown option: name it instead of a deep traceback
        if "unexpected keyword argument" in str(exc):
            raise ValueError(f"model {name!r}: {exc}") from None
        raise
