"""Typed recipes: one architecture's training and evaluation settings, checked once at the start
of a run (docs/kedro_dvc.md, "Parameters").

A parameters file ``conf/base/parameters_train_<arch>.yml`` holds one block ``<arch>``::

    <arch>:
      recipe: cpu_synthetic        # the recipe a run uses by default
      cpu_synthetic: {...}         # a Recipe
      paper: {...}                 # another Recipe

``recipe_override`` (parameters.yml) lets an environment pick another recipe for every
architecture that trains on one dataset slot (``{single_modality: paper}``) or for one
architecture (``{agw: paper_vi}``).

Every default lives in the models below; code below the nodes receives these typed objects and
never re-applies defaults. Messages name the key as written in the parameters file
(``dimn.cpu_synthetic.sampler.batch_size=30 is not divisible by k=4``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_serializer,
    model_validator,
)

from reid_pipeline.errors import ConfigError

#: dataset formats whose records hold both modalities (visible and infrared)
VISIBLE_INFRARED = ("sysu_mm01", "regdb", "llcm")
#: keys of an architecture block that are not recipes
_BLOCK_KEYS = ("recipe",)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Open(BaseModel):
    """A section whose extra options are checked by the builder it feeds (model, loss,
    optimiser): typed common fields, other keys kept in ``model_extra``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def options(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name"})


class ModelSpec(_Open):
    """``model:`` - the registered model's name and its keyword options."""

    name: str


class InputSpec(_Section):
    height: PositiveInt
    width: PositiveInt


class SamplerSpec(_Section):
    """P identities x K images per batch; ``batch_size`` may replace ``p``. ``epoch``: ``images``
    (every identity's images in chunks of K) or ``identities`` (one chunk per identity, the
    official PMM sampler's epoch; ``data/samplers.py``)."""

    k: PositiveInt
    p: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    epoch: Literal["images", "identities"] = "images"

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        # the default epoch is left out, so recipes that do not set it keep their checkpoint
        # fingerprint (training_fingerprint digests this dump)
        data = handler(self)
        if data.get("epoch") == "images":
            del data["epoch"]
        return data

    @model_validator(mode="after")
    def _pk(self) -> SamplerSpec:
        if self.batch_size is not None:
            if self.batch_size % self.k:
                raise ValueError(
                    f"batch_size={self.batch_size} is not divisible by k={self.k}; a batch holds "
                    "P identities x K images"
                )
            if self.p is not None and self.p != self.batch_size // self.k:
                raise ValueError(f"p={self.p} but batch_size/k = {self.batch_size // self.k}")
        elif self.p is None:
            raise ValueError("give p (identities per batch) or batch_size")
        if self.identities < 2:
            raise ValueError(f"p: a batch needs at least 2 identities, got {self.identities}")
        return self

    @property
    def identities(self) -> int:
        return self.p if self.p is not None else (self.batch_size or 0) // self.k


class LoaderSpec(_Section):
    num_workers: NonNegativeInt = 0
    eval_batch_size: PositiveInt = 128


class LossSpec(_Open):
    """One term of the criterion: ``{name, weight, **options}``."""

    name: str
    weight: float = 1.0


class OptimizerSpec(_Open):
    name: Literal["sgd", "adam", "adamw"]
    lr: PositiveFloat
    weight_decay: float = Field(default=0.0, ge=0.0)

    def spec(self) -> dict[str, Any]:
        return self.model_dump()


class FitSpec(_Section):
    epochs: PositiveInt
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False
    grad_clip: PositiveFloat | None = None
    resume: bool = True
    progress: bool = True
    #: cuDNN deterministic kernels and torch's deterministic algorithms (docs/training.md)
    deterministic: bool = False
    #: a checkpoint trained with other settings: move it aside and start fresh ("restart") or
    #: stop with a message naming what differs ("error")
    on_checkpoint_mismatch: Literal["restart", "error"] = "restart"
    #: learning rate x world size ("linear") or its square root under torchrun (docs/training.md)
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"


class ValidationSpec(_Section):
    """Identities held out of the training split to follow training and select the best epoch
    (0: none)."""

    num_ids: NonNegativeInt = 0
    #: draws which identities are held out (and each one's query images); apart from the
    #: recipe's training ``seed``, so runs over several training seeds train on the same
    #: identities, see the same number of images and select on the same validation set
    seed: NonNegativeInt = 0
    every: PositiveInt = 1
    metric: Literal["mAP", "R1", "mINP"] = "mAP"
    #: which weights the run returns: "best" (the epoch with the best ``metric``) or "last" (the
    #: final epoch's; validation then only reports how training goes, for a validation set too
    #: small to choose an epoch reliably)
    select: Literal["best", "last"] = "best"


class EvaluationSpec(_Section):
    metric: Literal["cosine", "euclidean"] = "cosine"
    #: embeddings in fp32 (bf16 keeps about 3 significant digits, enough to reorder close ranks)
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    flip: bool = False
    rerank: bool = False
    protocol: dict[str, Any] = Field(default_factory=dict)
    rank_list_queries: NonNegativeInt = 6
    rank_list_topk: PositiveInt = 10
    max_rank: PositiveInt = 50
    #: AP summed over the first N ranks only (divided by all matches), as the official PMM
    #: evaluator (N = 50); None: the full-list AP (docs/models.md, PMM)
    map_max_rank: PositiveInt | None = None


class Recipe(_Section):
    """Everything that decides how one architecture is trained and evaluated."""

    dataset_slot: str
    seed: NonNegativeInt = 0
    model: ModelSpec
    input: InputSpec
    augmentation: list[dict[str, Any]]
    sampler: SamplerSpec
    loader: LoaderSpec = LoaderSpec()
    losses: list[LossSpec] = Field(min_length=1)
    optimizer: OptimizerSpec
    scheduler: dict[str, Any] | None = None
    fit: FitSpec
    validation: ValidationSpec = ValidationSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    checkpoint_dir: str | None = None


class DatasetSpec(_Section):
    """One entry of ``datasets`` (parameters.yml)."""

    name: str
    root: str
    options: dict[str, Any] = Field(default_factory=dict)
    synthetic: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


class Experiment(_Section):
    """A run's resolved settings: the recipe ``recipe_name`` of architecture ``arch`` with the
    dataset its slot names and that dataset's protocol options."""

    arch: str
    recipe_name: str
    recipe: Recipe
    dataset: DatasetSpec
    protocol: dict[str, Any] = Field(default_factory=dict)
    #: DVCLive folder updated after every epoch (None: no live logging)
    live_dir: str | None = None

    @property
    def where(self) -> str:
        """The recipe's key path, the prefix of every message about it."""
        return f"{self.arch}.{self.recipe_name}"


def _format(where: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    msg = re.sub(r"^(Value|Assertion) error, ", "", first["msg"])
    key = f"{where}{loc}"
    if re.match(r"^\w+=", msg):  # "batch_size=30 is not ..." reads as the key itself
        text = f"{key}.{msg}"
    elif first["type"] in ("missing", "value_error", "assertion_error"):
        text = f"{key}: {msg}"
    else:
        text = f"{key}: {msg}, got {first.get('input')!r}"
    more = len(exc.errors()) - 1
    return text + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return dict(value)


def recipe_names(block: Mapping[str, Any]) -> list[str]:
    """The recipes of an architecture block (every key but ``recipe``)."""
    return sorted(k for k in block if k not in _BLOCK_KEYS)


def selected_recipe(arch: str, block: Mapping[str, Any], override: Mapping[str, Any] | None) -> str:
    """The recipe architecture ``arch`` runs: ``recipe_override[arch]`` when the environment
    names the architecture; else ``recipe_override[<slot>]`` where ``<slot>`` is the dataset slot
    of the block's own default recipe (a real-data environment says ``single_modality: paper``
    and every architecture that trains on that slot switches, new ones included); else the
    block's own ``recipe``."""
    override = dict(override or {})
    if arch in override:
        return str(override[arch])
    default = block.get("recipe")
    if not isinstance(default, str) or default not in block:
        raise ConfigError(
            f"{arch}.recipe: name the recipe that runs by default (one of {recipe_names(block)}), "
            f"got {default!r}"
        )
    slot = block[default].get("dataset_slot") if isinstance(block[default], Mapping) else None
    if slot in override:
        name = str(override[slot])
        if name not in block:
            raise ConfigError(
                f"recipe_override.{slot}={name!r}: {arch} has no such recipe (it has "
                f"{recipe_names(block)}); add it to parameters_train_{arch}.yml or set "
                f"recipe_override.{arch}"
            )
        return name
    return default


def parse_recipe(where: str, params: Mapping[str, Any]) -> Recipe:
    """``params`` as a typed ``Recipe`` (types, ranges, unknown keys); ``where`` prefixes
    messages."""
    try:
        return Recipe.model_validate(_mapping(where, params))
    except ValidationError as exc:
        raise ConfigError(_format(where, exc)) from None


def parse_dataset(where: str, params: Any) -> DatasetSpec:
    try:
        return DatasetSpec.model_validate(_mapping(where, params))
    except ValidationError as exc:
        raise ConfigError(_format(where, exc)) from None


def resolve_experiment(
    arch: str,
    block: Mapping[str, Any],
    *,
    datasets: Mapping[str, Any],
    protocols: Mapping[str, Any] | None = None,
    recipe_override: Mapping[str, Any] | None = None,
    recipe: str | None = None,
    live_metrics_dir: str | None = None,
) -> Experiment:
    """The typed ``Experiment`` of architecture ``arch`` (its parameter block ``block``):
    the selected recipe (or ``recipe``), its dataset slot and that dataset's protocol options.
    Structure and types only; ``checks.check_experiment`` runs the builders' own checks."""
    block = _mapping(arch, block)
    name = recipe or selected_recipe(arch, block, recipe_override)
    if name not in recipe_names(block):
        raise ConfigError(
            f"{arch}.recipe: no recipe {name!r} in the {arch} parameters; expected one of "
            f"{recipe_names(block)}"
        )
    where = f"{arch}.{name}"
    parsed = parse_recipe(where, block[name])
    if parsed.dataset_slot not in datasets:
        raise ConfigError(
            f"{where}.dataset_slot: expected one of {sorted(datasets)}, got {parsed.dataset_slot!r}"
        )
    dataset = parse_dataset(f"datasets.{parsed.dataset_slot}", datasets[parsed.dataset_slot])
    protocol = dict((protocols or {}).get(dataset.name) or {})
    protocol |= parsed.evaluation.protocol
    live_dir = live_metrics_dir.format(arch=arch) if live_metrics_dir else None
    return Experiment(
        arch=arch,
        recipe_name=name,
        recipe=parsed,
        dataset=dataset,
        protocol=protocol,
        live_dir=live_dir,
    )


def checkpoint_path(where: str, value: str | None) -> Path | None:
    """``checkpoint_dir`` as a path: absolute paths are taken as they are; a relative one must
    stay inside the project (the working directory)."""
    if value is None:
        return None
    path = Path(value)
    if path.is_absolute():
        return path
    here = Path.cwd().resolve()
    resolved = (here / path).resolve()
    if not resolved.is_relative_to(here):
        raise ConfigError(
            f"{where}.checkpoint_dir={value!r} leaves the project folder; use a path inside it "
            "or an absolute path"
        )
    return path
