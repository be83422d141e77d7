"""The checks a recipe needs beyond its types, all before anything is read or written: names
known to the registries, options the model accepts, transforms and schedules their builders
accept, the device, the paths, and one dry training forward at the configured input size.
Checks that need the data (K against the images an identity has) run right after ingestion
(``check_against_data``), still before training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reid_pipeline.data.samplers import check_sampler_feasible
from reid_pipeline.data.transforms import build_transforms
from reid_pipeline.engine.device import PRECISIONS, resolve_device
from reid_pipeline.engine.optim import build_optimizer, build_scheduler
from reid_pipeline.errors import ConfigError
from reid_pipeline.experiment.modelling import build_model, feature_dims
from reid_pipeline.experiment.recipe import Experiment, Recipe, checkpoint_path
from reid_pipeline.losses import build_criterion
from reid_pipeline.losses.registry import get_loss_factory
from reid_pipeline.models import list_models, model_options


def _prefixed(where: str, section: str, exc: Exception) -> ConfigError:
    """A builder's message (``"optimizer.lr: ..."``) under the recipe's key path."""
    text = str(exc)
    if text.startswith(section):
        return ConfigError(f"{where}.{text}")
    return ConfigError(f"{where}.{section}: {text}")


def _check_model(where: str, recipe: Recipe) -> None:
    name = recipe.model.name
    if name not in list_models():
        raise ConfigError(
            f"{where}.model.name: unknown model {name!r}; expected one of {list_models()}"
        )
    options = recipe.model.options()
    accepted = model_options(name)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"{where}.model: unknown key(s) {unknown}; {name} accepts {sorted(model_options(name))}"
        )
    pretrained = options.get("pretrained")
    if isinstance(pretrained, str) and pretrained != "imagenet" and not Path(pretrained).is_file():
        raise ConfigError(
            f"{where}.model.pretrained={pretrained!r}: no such file; give 'imagenet', false or "
            "the path of a weights file"
        )


def check_recipe(where: str, recipe: Recipe) -> None:
    """Everything about ``recipe`` that its types cannot say (see the module docstring)."""
    _check_model(where, recipe)
    for modality in (0, 1):
        try:
            build_transforms(
                recipe.augmentation,
                height=recipe.input.height,
                width=recipe.input.width,
                modality=modality,
            )
        except ValueError as exc:
            raise ConfigError(f"{where}.augmentation: {exc}") from None
    for i, loss in enumerate(recipe.losses):
        try:
            get_loss_factory(loss.name)
        except ValueError as exc:
            raise ConfigError(f"{where}.losses[{i}]: {exc}") from None
    try:
        build_scheduler(recipe.scheduler, epochs=recipe.fit.epochs, iters_per_epoch=1)
    except ValueError as exc:
        raise _prefixed(where, "scheduler", exc) from None
    if recipe.fit.precision not in PRECISIONS:
        raise ConfigError(
            f"{where}.fit.precision: expected one of {list(PRECISIONS)}, got "
            f"{recipe.fit.precision!r}"
        )
    try:
        resolve_device(recipe.fit.device)
    except ValueError as exc:
        raise ConfigError(f"{where}.fit.{exc}") from None
    checkpoint_path(where, recipe.checkpoint_dir)


def dry_run(experiment: Experiment) -> None:
    """Build the model (random weights, 2 classes, no pretrained download), run one training
    forward at the configured input size, and build the criterion and optimiser on it: options
    that do not fit the input (more parts than feature-map rows) or each other fail here."""
    recipe, where = experiment.recipe, experiment.where
    options = {**recipe.model.options(), "pretrained": False}
    try:
        model = build_model(recipe.model.name, num_classes=2, options=options, seed=recipe.seed)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}.model: {exc}") from None
    try:
        dims = feature_dims(model, recipe.input.height, recipe.input.width)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"{where}.model does not run at input {recipe.input.height}x{recipe.input.width}: {exc}"
        ) from None
    try:
        build_criterion(
            [loss.model_dump() for loss in recipe.losses],
            context={"num_classes": 2, "feat_dims": dims},
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}.losses: {exc}") from None
    try:
        build_optimizer(model, recipe.optimizer.spec())
    except (ValueError, TypeError) as exc:
        raise _prefixed(where, "optimizer", exc) from None


def check_experiment(experiment: Experiment) -> None:
    check_recipe(experiment.where, experiment.recipe)
    dry_run(experiment)


def check_against_data(
    experiment: Experiment, pids: Sequence[int], modality: Sequence[int]
) -> None:
    """P, K and the batch against the identities of the training records."""
    sampler = experiment.recipe.sampler
    cross = any(modality)
    try:
        check_sampler_feasible(
            list(pids),
            p=sampler.identities,
            k=sampler.k,
            modality=list(modality) if cross else None,
        )
    except ValueError as exc:
        raise ConfigError(f"{experiment.where}.sampler: {exc}") from None


def dummy_batch(height: int, width: int, cross: bool) -> dict[str, Any]:
    """Four images of two identities (both modalities for a visible-infrared model)."""
    return {
        "images": torch.randn(4, 3, height, width),
        "pids": torch.tensor([0, 0, 1, 1]),
        "modality": torch.tensor([0, 1, 0, 1]) if cross else None,
    }
