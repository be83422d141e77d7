"""Model registry: ``create_model(name, ...)``, ``list_models()`` and ``model_options(name)``.

An architecture's model is one file: a module ``reid_pipeline/models/<name>.py`` whose model
class carries ``@register_model("<name>")`` (with its parameters file, the whole of adding an
architecture: docs/adding_an_architecture.md). The registry finds such modules itself
(:func:`discover_models` walks the package with ``pkgutil`` the first time a name is needed);
``base``, ``registry``, private ``_*`` modules and the ``layers`` subpackage are not model
modules. A module that fails to import is logged as a warning naming it and skipped, so one broken
architecture never hides the others.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from collections.abc import Callable
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)

#: modules of a model package that are not architectures
NOT_MODEL_MODULES = frozenset({"base", "registry", "layers"})

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
#: module -> import error of the model modules that could not be imported
_FAILED: dict[str, str] = {}
_STATE = {"discovered": False}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model class (or builder) under ``name``; its keyword options
    are the recipe's ``model:`` keys. A second, different registration of a name is refused."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        known = _BUILDERS.get(name)
        if known is not None and known is not fn and _qualname(known) != _qualname(fn):
            raise ValueError(
                f"model {name!r} is already registered by {_qualname(known)}; pick another name"
            )
        _BUILDERS[name] = fn
        return fn

    return decorator


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def discover_models(package: str = "reid_pipeline.models") -> list[str]:
    """Import every model module of ``package`` so its ``@register_model`` runs.

    Returns the modules imported. A module whose import raises is logged (a warning naming the
    module and the error) and recorded, the others are still imported.
    """
    pkg = importlib.import_module(package)
    imported = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in NOT_MODEL_MODULES:
            continue
        module = f"{pkg.__name__}.{info.name}"
        try:
            importlib.import_module(module)
        except Exception as exc:  # one broken architecture must not hide the others
            _FAILED[module] = f"{type(exc).__name__}: {exc}"
            logger.warning("model module %s could not be imported and is skipped: %s", module, exc)
            continue
        imported.append(module)
    return imported


def _discover() -> None:
    if not _STATE["discovered"]:
        _STATE["discovered"] = True
        discover_models()


def list_models() -> list[str]:
    """Names of the registered architectures, sorted."""
    _discover()
    return sorted(_BUILDERS)


def _builder(name: str) -> Callable[..., nn.Module]:
    _discover()
    if name not in _BUILDERS:
        broken = "".join(f"; {m} failed to import ({err})" for m, err in sorted(_FAILED.items()))
        raise ValueError(f"unknown model {name!r}; expected one of {list_models()}{broken}")
    return _BUILDERS[name]


def model_options(name: str) -> set[str]:
    """The keyword options the model ``name`` accepts (``num_classes`` excluded)."""
    params = inspect.signature(_builder(name)).parameters
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {k for k, v in params.items() if v.kind in kinds} - {"num_classes"}


def create_model(name: str, *, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a registered model. ``kwargs`` are its keyword-only options (``backbone``,
    ``pretrained``, architecture-specific switches)."""
    builder = _builder(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    unknown = sorted(set(kwargs) - model_options(name))
    if unknown:  # name it instead of a deep TypeError traceback
        what = "argument" if len(unknown) == 1 else "arguments"
        raise ValueError(
            f"model {name!r}: unexpected keyword {what} {', '.join(map(repr, unknown))}; its "
            f"options are {sorted(model_options(name))}"
        )
    return builder(num_classes=num_classes, **kwargs)
