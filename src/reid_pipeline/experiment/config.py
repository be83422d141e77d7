"""The parameters of one training experiment, checked once, before any data is read.

The Kedro template passes each architecture's parameter block (``conf/base/
parameters_train_<arch>.yml``) here. ``parse_config`` rejects unknown keys, unknown model /
loss / transform names, bad optimiser or schedule specs and a batch that does not split into
P x K, each with one message naming the key; checks that need the data (K larger than the images
an identity has, too few identities for P) run in ``check_against_data`` right after ingestion -
still before any training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reid_pipeline.data.samplers import check_sampler_feasible
from reid_pipeline.data.transforms import build_transforms
from reid_pipeline.engine.optim import build_scheduler
from reid_pipeline.losses.registry import get_loss_factory
from reid_pipeline.models.registry import list_models, model_options

_SECTIONS = {
    "dataset": True,
    "seed": False,
    "model": True,
    "input": True,
    "augmentation": True,
    "sampler": True,
    "loader": False,
    "losses": True,
    "optimizer": True,
    "scheduler": False,
    "fit": True,
    "validation": False,
    "evaluation": False,
    "checkpoint_dir": False,
}

_FIT_KEYS = {
    "epochs",
    "device",
    "precision",
    "channels_last",
    "compile",
    "grad_clip",
    "resume",
    "progress",
}
_EVAL_KEYS = {
    "metric",
    "flip",
    "rerank",
    "batch_size",
    "protocol",
    "rank_list_queries",
    "rank_list_topk",
    "max_rank",
}
_VALIDATION_KEYS = {"num_ids", "every", "metric"}
_LOADER_KEYS = {"num_workers", "eval_batch_size"}


class ConfigError(ValueError):
    """A parameter is missing or wrong; the message names the key (``<arch>.<section>.<key>``)."""


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return dict(value)


def _unknown(where: str, value: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(value) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {extra}; expected some of {sorted(allowed)}")


def _positive_int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class ExperimentConfig:
    """Validated parameters of one experiment (see ``parse_config``)."""

    name: str
    dataset: dict[str, Any]
    model: dict[str, Any]
    height: int
    width: int
    augmentation: list[dict[str, Any]]
    p: int
    k: int
    losses: list[dict[str, Any]]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    fit: dict[str, Any]
    seed: int = 0
    num_workers: int = 0
    eval_batch_size: int = 128
    validation: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    checkpoint_dir: str | None = None

    @property
    def model_name(self) -> str:
        return str(self.model["name"])

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.model.items() if k != "name"}


def parse_config(params: Mapping[str, Any], *, name: str = "experiment") -> ExperimentConfig:
    """Check ``params`` (one architecture's block) and return an ``ExperimentConfig``."""
    params = _mapping(name, params)
    _unknown(name, params, set(_SECTIONS))
    missing = [k for k, required in _SECTIONS.items() if required and k not in params]
    if missing:
        raise ConfigError(f"{name}: missing key(s) {missing}")

    dataset = _mapping(f"{name}.dataset", params["dataset"])
    _unknown(f"{name}.dataset", dataset, {"name", "root", "options", "synthetic", "protocol"})
    for key in ("name", "root"):
        if not isinstance(dataset.get(key), str):
            raise ConfigError(f"{name}.dataset.{key}: expected a string, got {dataset.get(key)!r}")

    model = _mapping(f"{name}.model", params["model"])
    if model.get("name") not in list_models():
        raise ConfigError(
            f"{name}.model.name: unknown model {model.get('name')!r}; expected one of "
            f"{list_models()}"
        )
    accepted = model_options(model["name"])
    if accepted:  # builders with explicit keyword options: check them here
        _unknown(f"{name}.model", model, accepted | {"name"})

    size = _mapping(f"{name}.input", params["input"])
    _unknown(f"{name}.input", size, {"height", "width"})
    height = _positive_int(f"{name}.input.height", size.get("height"))
    width = _positive_int(f"{name}.input.width", size.get("width"))

    augmentation = params["augmentation"]
    if not isinstance(augmentation, list):
        raise ConfigError(f"{name}.augmentation: expected a list of {{name, ...}} entries")
    for modality in (0, 1):
        try:
            build_transforms(augmentation, height=height, width=width, modality=modality)
        except ValueError as exc:
            raise ConfigError(f"{name}.augmentation: {exc}") from None

    sampler = _mapping(f"{name}.sampler", params["sampler"])
    _unknown(f"{name}.sampler", sampler, {"p", "k", "batch_size"})
    k = _positive_int(f"{name}.sampler.k", sampler.get("k"))
    if "batch_size" in sampler:
        batch = _positive_int(f"{name}.sampler.batch_size", sampler["batch_size"])
        if batch % k:
            raise ConfigError(
                f"{name}.sampler.batch_size={batch} is not divisible by k={k}; a batch holds P "
                "identities x K images"
            )
        p = batch // k
        if "p" in sampler and sampler["p"] != p:
            raise ConfigError(f"{name}.sampler: p={sampler['p']} but batch_size/k = {p}")
    else:
        p = _positive_int(f"{name}.sampler.p", sampler.get("p"))
    if p < 2:
        raise ConfigError(f"{name}.sampler.p: a batch needs at least 2 identities, got {p}")

    losses = params["losses"]
    if not isinstance(losses, list) or not losses:
        raise ConfigError(f"{name}.losses: expected a non-empty list of {{name, weight, ...}}")
    for i, entry in enumerate(losses):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ConfigError(
                f"{name}.losses[{i}]: expected a mapping with a 'name', got {entry!r}"
            )
        try:
            get_loss_factory(entry["name"])
        except ValueError as exc:
            raise ConfigError(f"{name}.losses[{i}]: {exc}") from None

    optimizer = _mapping(f"{name}.optimizer", params["optimizer"])
    fit = _mapping(f"{name}.fit", params["fit"])
    _unknown(f"{name}.fit", fit, _FIT_KEYS)
    epochs = _positive_int(f"{name}.fit.epochs", fit.get("epochs"))
    scheduler = params.get("scheduler")
    try:
        build_scheduler(scheduler, epochs=epochs, iters_per_epoch=1)
    except ValueError as exc:
        raise ConfigError(f"{name}.scheduler: {exc}") from None

    loader = _mapping(f"{name}.loader", params.get("loader", {}))
    _unknown(f"{name}.loader", loader, _LOADER_KEYS)
    num_workers = loader.get("num_workers", 0)
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"{name}.loader.num_workers: expected an int >= 0, got {num_workers!r}")
    eval_batch = _positive_int(f"{name}.loader.eval_batch_size", loader.get("eval_batch_size", 128))

    validation = _mapping(f"{name}.validation", params.get("validation") or {})
    _unknown(f"{name}.validation", validation, _VALIDATION_KEYS)
    evaluation = _mapping(f"{name}.evaluation", params.get("evaluation") or {})
    _unknown(f"{name}.evaluation", evaluation, _EVAL_KEYS)
    if evaluation.get("metric", "cosine") not in ("cosine", "euclidean"):
        raise ConfigError(
            f"{name}.evaluation.metric: expected 'cosine' or 'euclidean', got "
            f"{evaluation.get('metric')!r}"
        )
    seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{name}.seed: expected an int >= 0, got {seed!r}")
    return ExperimentConfig(
        name=name,
        dataset=dataset,
        model=model,
        height=height,
        width=width,
        augmentation=list(augmentation),
        p=p,
        k=k,
        losses=[dict(e) for e in losses],
        optimizer=optimizer,
        scheduler=dict(scheduler) if scheduler else None,
        fit=fit,
        seed=seed,
        num_workers=num_workers,
        eval_batch_size=eval_batch,
        validation=validation,
        evaluation=evaluation,
        checkpoint_dir=params.get("checkpoint_dir"),
    )


def select_experiment(
    block: Mapping[str, Any],
    *,
    recipe: str,
    datasets: Mapping[str, Any],
    protocols: Mapping[str, Any] | None = None,
    name: str = "experiment",
) -> dict[str, Any]:
    """One architecture's parameters for a run: recipe ``recipe`` of its ``block`` (``<arch>:
    {cpu_synthetic: {...}, paper: {...}}``) with ``dataset_slot`` replaced by the dataset it
    names in ``datasets``, whose ``protocol`` becomes ``protocols[<dataset name>]``."""
    block = _mapping(name, block)
    if recipe not in block:
        raise ConfigError(
            f"recipes.{name}: no recipe {recipe!r} in the {name} parameters; expected one of "
            f"{sorted(block)}"
        )
    params = _mapping(f"{name}.{recipe}", block[recipe])
    slot = params.pop("dataset_slot", None)
    if not isinstance(slot, str) or slot not in datasets:
        raise ConfigError(
            f"{name}.{recipe}.dataset_slot: expected one of {sorted(datasets)}, got {slot!r}"
        )
    dataset = _mapping(f"datasets.{slot}", datasets[slot])
    protocol = dict((protocols or {}).get(dataset.get("name"), {}) or {})
    params["dataset"] = {**dataset, "protocol": protocol}
    return params


def check_against_data(config: ExperimentConfig, pids: list[int], modality: list[int]) -> None:
    """The checks that need the training records: P, K and the batch against the identities."""
    cross = any(modality)
    try:
        check_sampler_feasible(pids, p=config.p, k=config.k, modality=modality if cross else None)
    except ValueError as exc:
        raise ConfigError(f"{config.name}.sampler: {exc}") from None
