"""Loss registry and the criterion built from parameters.

A loss is an ``nn.Module`` whose ``forward(output, pids, modality)`` takes the model's
``ReidOutput``, the batch's (relabelled) pids ``LongTensor[B]`` and the modality tensor (or
None) and returns a scalar. Each loss decides which part of the output it reads: identity losses
read every ``output.logits`` entry, metric losses every ``output.feats`` entry (or the subset given
by the ``branches`` option), contrastive losses their ``output.extras`` keys.

Parameters declare the combination as a list::

    losses:
      - {name: ce, weight: 1.0, epsilon: 0.1}
      - {name: triplet, weight: 1.0, margin: 0.3}

``build_criterion`` turns that list into a ``Criterion`` once, at the node; unknown names or
options fail there with the offending key named.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from reid_pipeline.losses.functional import fp32
from reid_pipeline.models.base import ReidOutput

# name -> module that registers it. Adding a loss = one line here.
_MODULES: dict[str, str] = {
    "ce": "reid_pipeline.losses.classification",
    "triplet": "reid_pipeline.losses.triplet",
    "wrt": "reid_pipeline.losses.triplet",
    "center": "reid_pipeline.losses.center",
    "cmkic": "reid_pipeline.losses.cmkic",
    "igcl": "reid_pipeline.losses.igcl",
}

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register_loss(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a loss class (or factory) under ``name``; duplicate names are refused."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"loss {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return decorator


def list_losses() -> list[str]:
    return sorted(_MODULES)


def get_loss_factory(name: str) -> Callable[..., nn.Module]:
    if name not in _MODULES:
        raise ValueError(f"unknown loss {name!r}; expected one of {list_losses()}")
    if name not in _FACTORIES:
        importlib.import_module(_MODULES[name])
    return _FACTORIES[name]


class Criterion(nn.Module):
    """Weighted sum of losses. ``forward`` returns ``(total, {name: value})``.

    Terms with the same name are keyed ``name``, ``name_1``, ... in the returned dict. The sum
    is computed in float32 with autocast off, as every loss is (``losses/functional.py``).
    """

    def __init__(self, terms: Sequence[tuple[str, float, nn.Module]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("losses: the list is empty; give at least one {name, weight}")
        self.names: list[str] = []
        seen: dict[str, int] = {}
        for name, _, _ in terms:
            k = seen.get(name, 0)
            seen[name] = k + 1
            self.names.append(name if k == 0 else f"{name}_{k}")
        self.weights = [float(w) for _, w, _ in terms]
        self.terms = nn.ModuleList([m for _, _, m in terms])

    @fp32
    def forward(
        self, output: ReidOutput, pids: Tensor, modality: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        values: dict[str, Tensor] = {}
        total = torch.zeros((), device=pids.device)
        for name, weight, term in zip(self.names, self.weights, self.terms, strict=True):
            value = term(output, pids, modality)
            values[name] = value.detach()
            total = total + weight * value
        return total, values


def build_criterion(
    spec: Sequence[Mapping[str, Any]], *, context: Mapping[str, Any] | None = None
) -> Criterion:
    """Build a ``Criterion`` from ``[{name, weight, **options}, ...]``.

    ``context`` supplies what a loss may need to know about the model (``num_classes``,
    ``feat_dims``: list of the dims of ``output.feats``); a factory takes the context keys it
    declares as keyword arguments and ignores the rest.
    """
    context = dict(context or {})
    terms: list[tuple[str, float, nn.Module]] = []
    for i, entry in enumerate(spec):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ValueError(f"losses[{i}]: expected a mapping with a 'name' key, got {entry!r}")
        options = dict(entry)
        name = options.pop("name")
        weight = options.pop("weight", 1.0)
        if not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"losses[{i}] ({name}): weight must be a number >= 0, got {weight!r}")
        factory = get_loss_factory(name)
        accepted = inspect.signature(factory).parameters
        extra = {k: v for k, v in context.items() if k in accepted and k not in options}
        try:
            module = factory(**options, **extra)
        except TypeError as exc:
            raise ValueError(f"losses[{i}] ({name}): {exc}") from None
        terms.append((name, float(weight), module))
    return Criterion(terms)
