"""Building a recipe's model: seeded initial weights, the modality check, the widths of the
features its losses see."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from reid_pipeline.errors import ConfigError
from reid_pipeline.models import create_model


def build_model(name: str, *, num_classes: int, options: Mapping[str, Any], seed: int) -> nn.Module:
    """``create_model(name, num_classes, **options)`` with initial weights that depend only on
    ``seed`` (the untrained reference model is rebuilt from it)."""
    torch.manual_seed(seed)
    try:
        return create_model(name, num_classes=num_classes, **dict(options))
    except ValueError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None


def check_modalities(model: nn.Module, name: str, cross_data: bool) -> None:
    """A visible-infrared model needs infrared images; a single-modality model on
    visible-infrared data shares every layer between the modalities (a warning)."""
    cross_model = bool(getattr(model, "cross_modality", False))
    if cross_model and not cross_data:
        raise ConfigError(
            f"model {name!r} is a visible-infrared model but the training data has no infrared "
            "images; use a visible-infrared dataset (sysu_mm01, regdb, llcm)"
        )
    if cross_data and not cross_model:
        warnings.warn(
            f"model {name!r} is single-modality: visible and infrared images share every layer "
            "(set `cross_modality: true` in its recipe's model block where it has that option)",
            stacklevel=2,
        )


def feature_dims(model: nn.Module, height: int, width: int) -> list[int]:
    """The widths of ``output.feats`` (losses such as center loss need them), from a training
    forward of a 4-image dummy batch through a copy of ``model``: the model itself is left
    untouched (a training forward would move its BatchNorm statistics towards random input)."""
    model = copy.deepcopy(model)
    cross = bool(getattr(model, "cross_modality", False))
    images = torch.randn(4, 3, height, width)
    pids = torch.tensor([0, 0, 1, 1])
    modality = torch.tensor([0, 1, 0, 1]) if cross else None
    model.train()
    out = model(images, targets=pids, modality=modality)
    model.zero_grad(set_to_none=True)
    return [int(f.shape[1]) for f in out.feats]
