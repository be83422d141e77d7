"""Optimisers with regex parameter groups, and warm-up + step / cosine learning-rate schedules.

Optimiser spec (a plain mapping from parameters)::

    {name: sgd | adam | adamw, lr: 0.01, weight_decay: 5e-4,
     momentum: 0.9, nesterov: true,            # sgd only
     betas: [0.9, 0.999], eps: 1e-8,           # adam / adamw only
     groups: [{params: "bnneck|classifier", lr: 0.1, name: head}]}

Each trainable parameter (``requires_grad`` False ones, e.g. the BNNeck's frozen bias, are skipped)
joins the first group whose ``params`` regex matches its name (``re.search``), else the
``default`` group. A group that matches nothing is an error naming the regex. Criterion
parameters (centre-loss centres) are named ``criterion.<name>`` (``criterion.terms.1.centers.0``):
a user group may claim them; otherwise a loss that declares ``optim_options`` (see
``losses.center.loss_param_groups``) gets its own optimiser (``build_loss_optimizers``: BoT's
plain SGD with lr 0.5 on the centres, outside the schedule and the clipping), and any other one
joins the ``default`` group.

Schedule spec (stepped per epoch; optionally the warm-up per iteration)::

    {name: step | cosine | constant, milestones: [40, 70], gamma: 0.1,   # step
     min_factor: 0.0,                                                    # cosine floor
     warmup_epochs: 10, warmup_factor: 0.01, warmup_method: linear | stepwise,
     warmup_steps: 9, warmup_per_iter: false}

Epochs are 0-based: epoch ``e`` trains with ``lr = base_lr * factor(e)``, where ``factor`` is the
warm-up factor times the decay factor. Linear warm-up goes from ``warmup_factor`` at epoch 0 to 1 at
``warmup_epochs``; stepwise warm-up climbs in ``warmup_steps`` equal stairs over the same span. Step
decay multiplies by ``gamma`` from each milestone epoch on; cosine decays from 1 at
``warmup_epochs`` to ``min_factor`` at ``epochs``.

The recipes of docs/models.md in this vocabulary:

- BoT: adam lr 3.5e-4; step milestones [40, 70] gamma 0.1, warmup_epochs 10, warmup_factor 0.01
  (the official WarmupMultiStepLR stepped per epoch gives exactly these values).
- AGW: sgd lr 0.01 momentum 0.9 nesterov, weight_decay 5e-4, groups [{params: "bnneck|classifier",
  lr: 0.1}]; step milestones [20, 50] gamma 0.1, warmup_epochs 9, warmup_factor 0.1 (the official
  ``lr * (epoch + 1) / 10`` for epochs 0..9).
- PMM: adam lr 1e-3 weight_decay 5e-4; step milestones [200, 300] gamma 0.1, warmup_method
  stepwise, warmup_epochs 45, warmup_steps 9, warmup_factor 0.1 (1e-4 -> 1e-3 in stairs of 1e-4
  every 5 epochs), epoch_offset 1: the official ``adjust_lr(epoch + 1)`` counts epochs from 1,
  so its stairs and decays come one epoch earlier than a 0-based count.
- DIMN (our design): sgd lr 0.05 momentum 0.9 weight_decay 5e-4; step milestones e.g. [40, 80],
  linear warm-up.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reid_pipeline.losses.center import loss_param_groups
from reid_pipeline.losses.registry import Criterion

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("step", "cosine", "constant")
WARMUP_METHODS = ("linear", "stepwise")

_COMMON_KEYS = {"lr", "weight_decay"}
_OPT_KEYS = {
    "sgd": _COMMON_KEYS | {"momentum", "nesterov", "dampening"},
    "adam": _COMMON_KEYS | {"betas", "eps", "amsgrad"},
    "adamw": _COMMON_KEYS | {"betas", "eps", "amsgrad"},
}
_TOP_ONLY_KEYS = {"name", "groups", "fused", "foreach"}
_OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def _check_number(where: str, value: Any, *, low: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if value < low or (strict and value == low):
        raise ValueError(f"{where}: expected a number {'>' if strict else '>='} {low}, got {value}")
    return float(value)


def _group_options(name: str, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate per-group options of optimiser ``name``; returns torch keyword arguments."""
    allowed = _OPT_KEYS[name]
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in allowed:
            raise ValueError(
                f"{where}.{key}: not an option of {name}; expected one of {sorted(allowed)}"
            )
        if key in ("lr",):
            out[key] = _check_number(f"{where}.{key}", value, strict=True)
        elif key in ("weight_decay", "momentum", "dampening", "eps"):
            out[key] = _check_number(f"{where}.{key}", value)
        elif key in ("nesterov", "amsgrad"):
            if not isinstance(value, bool):
                raise ValueError(f"{where}.{key}: expected true or false, got {value!r}")
            out[key] = value
        elif key == "betas":
            if not isinstance(value, Sequence) or len(value) != 2:
                raise ValueError(f"{where}.betas: expected two numbers, got {value!r}")
            out[key] = tuple(_check_number(f"{where}.betas", b) for b in value)
    return out


def _parse_spec(
    spec: Mapping[str, Any],
) -> tuple[str, dict[str, Any], list[tuple[str, re.Pattern[str], dict[str, Any], str]]]:
    """Validated (optimizer name, default options, user groups) of an optimiser spec."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"optimizer: expected a mapping with 'name' and 'lr', got {spec!r}")
    name = spec.get("name")
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer.name: expected one of {OPTIMIZERS}, got {name!r}")
    if "lr" not in spec:
        raise ValueError("optimizer.lr: missing; give the base learning rate")
    top = {k: v for k, v in spec.items() if k not in _TOP_ONLY_KEYS}
    defaults = _group_options(name, top, "optimizer")
    group_specs = spec.get("groups") or []
    if not isinstance(group_specs, Sequence) or isinstance(group_specs, str):
        raise ValueError(f"optimizer.groups: expected a list of mappings, got {group_specs!r}")
    user_groups: list[tuple[str, re.Pattern[str], dict[str, Any], str]] = []
    for i, g in enumerate(group_specs):
        where = f"optimizer.groups[{i}]"
        if not isinstance(g, Mapping) or not isinstance(g.get("params"), str):
            raise ValueError(f"{where}: expected a mapping with a 'params' regex, got {g!r}")
        try:
            pattern = re.compile(g["params"])
        except re.error as exc:
            raise ValueError(f"{where}.params: invalid regex {g['params']!r} ({exc})") from None
        opts = _group_options(
            name, {k: v for k, v in g.items() if k not in ("params", "name")}, where
        )
        gname = str(g.get("name", f"group{i}"))
        if gname == "default" or any(gname == u[0] for u in user_groups):
            raise ValueError(f"{where}.name: duplicate or reserved group name {gname!r}")
        user_groups.append((gname, pattern, opts, where))
    return name, defaults, user_groups


def _named_trainable(
    model: nn.Module | None, criterion: nn.Module | None
) -> list[tuple[str, nn.Parameter]]:
    named: list[tuple[str, nn.Parameter]] = []
    if model is not None:
        named += [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if criterion is not None:
        named += [(f"criterion.{n}", p) for n, p in criterion.named_parameters() if p.requires_grad]
    return named


def _loss_declared(criterion: nn.Module | None) -> list[dict[str, Any]]:
    """The loss-declared groups of ``losses.center.loss_param_groups`` (``optim_options``)."""
    if not isinstance(criterion, Criterion):
        return []
    return loss_param_groups(criterion)


def build_optimizer(
    model: nn.Module, spec: Mapping[str, Any], *, criterion: nn.Module | None = None
) -> torch.optim.Optimizer:
    """Build the optimiser of ``spec`` over the trainable parameters of ``model`` and those of
    ``criterion`` that no loss claims for its own optimiser (``build_loss_optimizers``). Every
    param group carries ``name`` and ``base_lr`` (used by the schedule)."""
    name, defaults, user_groups = _parse_spec(spec)
    named = _named_trainable(model, criterion)
    own = {id(p) for g in _loss_declared(criterion) for p in g["params"]}

    buckets: dict[str, tuple[dict[str, Any], list[nn.Parameter]]] = {"default": ({}, [])}
    for gname, _, opts, _ in user_groups:
        buckets[gname] = (opts, [])
    seen: set[int] = set()
    for pname, p in named:
        if id(p) in seen:  # shared (tied) parameters join one group only
            continue
        seen.add(id(p))
        target = next((g for g, pat, _, _ in user_groups if pat.search(pname)), None)
        if target is None and id(p) in own:
            continue  # stepped by the loss's own optimiser
        buckets[target or "default"][1].append(p)

    for gname, pattern, _, where in user_groups:
        if not buckets[gname][1]:
            examples = [n for n, _ in named[:4]]
            raise ValueError(
                f"{where}.params: regex {pattern.pattern!r} matches no trainable parameter "
                f"(or an earlier group took them all); parameter names look like {examples}"
            )
    param_groups = []
    for gname, (opts, params) in buckets.items():
        if params:
            merged = {**defaults, **opts}
            param_groups.append(
                {"params": params, "name": gname, "base_lr": merged["lr"], **merged}
            )
    if not param_groups:
        raise ValueError("optimizer: the model has no trainable parameter")
    extra = {k: spec[k] for k in ("fused", "foreach") if spec.get(k) is not None}
    return _OPTIMIZER_CLASSES[name](param_groups, lr=defaults["lr"], **extra)


def build_loss_optimizers(
    criterion: nn.Module | None, spec: Mapping[str, Any]
) -> list[torch.optim.Optimizer]:
    """One optimiser per optimiser type over the criterion parameters whose loss declares
    ``optim_options`` (e.g. BoT's centre-loss centres: plain SGD, lr 0.5 on the unweighted
    gradient), unless a user group of ``spec`` claims them. ``fit`` steps these with the main
    optimiser but keeps them out of the schedule and of gradient clipping (as BoT does)."""
    _, _, user_groups = _parse_spec(spec)
    names = {id(p): n for n, p in _named_trainable(None, criterion)}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for group in _loss_declared(criterion):
        params = [
            p
            for p in group["params"]
            if not any(pat.search(names.get(id(p), "")) for _, pat, _, _ in user_groups)
        ]
        if not params:
            continue
        options = {k: v for k, v in group.items() if k not in ("name", "params", "optimizer")}
        kind = group.get("optimizer", "sgd")
        where = f"loss {group['name']!r} optim_options"
        if kind not in OPTIMIZERS:
            raise ValueError(f"{where}: optimizer must be one of {OPTIMIZERS}, got {kind!r}")
        opts = _group_options(kind, options, where)
        by_type.setdefault(kind, []).append(
            {"params": params, "name": f"criterion.{group['name']}", "base_lr": opts["lr"], **opts}
        )
    return [_OPTIMIZER_CLASSES[k](groups, lr=groups[0]["lr"]) for k, groups in by_type.items()]


@dataclass(frozen=True)
class LRSchedule:
    """Learning-rate factor as a pure function of (epoch, iteration): nothing to checkpoint but
    the epoch, and a resumed run gets exactly the rates of an uninterrupted one."""

    name: str = "constant"
    epochs: int = 1
    iters_per_epoch: int = 1
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_factor: float = 0.0
    warmup_epochs: int = 0
    warmup_factor: float = 0.01
    warmup_method: str = "linear"
    warmup_steps: int = 1
    warmup_per_iter: bool = False
    #: evaluate the schedule at ``epoch + epoch_offset``: 1 reproduces code that counts epochs
    #: from 1 (PMM's official ``adjust_lr(epoch + 1)``)
    epoch_offset: int = 0

    def decay(self, epoch: int) -> float:
        if self.name == "step":
            return self.gamma ** bisect.bisect_right(self.milestones, epoch)
        if self.name == "cosine":
            span = max(self.epochs - self.warmup_epochs, 1)
            t = min(max((epoch - self.warmup_epochs) / span, 0.0), 1.0)
            return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0

    def warmup(self, epoch: int, iteration: int = 0) -> float:
        t = float(epoch)
        if self.warmup_per_iter:
            t += iteration / self.iters_per_epoch
        if t >= self.warmup_epochs:
            return 1.0
        frac = t / self.warmup_epochs
        if self.warmup_method == "stepwise":
            frac = math.floor(frac * self.warmup_steps + 1e-9) / self.warmup_steps
        return self.warmup_factor + (1.0 - self.warmup_factor) * frac

    def factor(self, epoch: int, iteration: int = 0) -> float:
        """Multiplier of every group's ``base_lr`` at ``epoch`` (0-based), ``iteration``."""
        epoch += self.epoch_offset
        return self.warmup(epoch, iteration) * self.decay(epoch)

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int, iteration: int = 0) -> None:
        f = self.factor(epoch, iteration)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * f

    @property
    def per_iteration(self) -> bool:
        """Whether the rate changes inside an epoch (per-iteration warm-up)."""
        return self.warmup_per_iter and self.warmup_epochs > 0

    def state_dict(self) -> dict[str, Any]:
        """Plain values only (loadable with ``weights_only=True``); ``epoch_offset`` only when
        set, so checkpoints written before it existed still resume."""
        state = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        if not self.epoch_offset:
            del state["epoch_offset"]
        return state

    @property
    def depends_on_epochs(self) -> bool:
        """Whether the rates depend on the total number of epochs: cosine anneals to ``epochs``;
        step milestones, constant rates and the warm-up do not. ``fit`` extends a finished run
        to more epochs only when this is False."""
        return self.name == "cosine"

    def resume_settings(self) -> dict[str, Any]:
        """What must be equal for a checkpoint to resume under this schedule: everything but
        ``epochs`` (checked apart, see ``depends_on_epochs``) and ``iters_per_epoch`` (unless the
        warm-up runs per iteration, whose rates depend on it)."""
        drop = {"epochs"} | (set() if self.per_iteration else {"iters_per_epoch"})
        return {k: v for k, v in self.state_dict().items() if k not in drop}


_SCHEDULE_KEYS = {
    "name",
    "milestones",
    "gamma",
    "min_factor",
    "warmup_epochs",
    "warmup_factor",
    "warmup_method",
    "warmup_steps",
    "warmup_per_iter",
    "epoch_offset",
}


def build_scheduler(
    spec: Mapping[str, Any] | None, *, epochs: int, iters_per_epoch: int = 1
) -> LRSchedule:
    """Validate a schedule spec (see the module docstring); ``None`` = constant rate."""
    spec = dict(spec or {"name": "constant"})
    unknown = set(spec) - _SCHEDULE_KEYS
    if unknown:
        raise ValueError(
            f"scheduler: unknown key(s) {sorted(unknown)}; expected {sorted(_SCHEDULE_KEYS)}"
        )
    name = spec.get("name", "constant")
    if name not in SCHEDULES:
        raise ValueError(f"scheduler.name: expected one of {SCHEDULES}, got {name!r}")
    milestones = spec.get("milestones", [])
    if name == "step":
        if not isinstance(milestones, Sequence) or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in milestones
        ):
            raise ValueError(
                f"scheduler.milestones: expected epochs (ints >= 0), got {milestones!r}"
            )
        if list(milestones) != sorted(set(milestones)):
            raise ValueError(
                f"scheduler.milestones: must be strictly increasing, got {list(milestones)}"
            )
    elif milestones:
        raise ValueError(f"scheduler.milestones: only used by name 'step', not {name!r}")
    warmup_epochs = spec.get("warmup_epochs", 0)
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ValueError(f"scheduler.warmup_epochs: expected an int >= 0, got {warmup_epochs!r}")
    if name == "cosine" and warmup_epochs >= epochs:
        raise ValueError(
            f"scheduler.warmup_epochs: {warmup_epochs} leaves no epoch for the "
            f"cosine decay ({epochs} epochs)"
        )
    warmup_factor = _check_number(
        "scheduler.warmup_factor", spec.get("warmup_factor", 0.01), strict=True
    )
    if warmup_factor > 1:
        raise ValueError(
            f"scheduler.warmup_factor: expected a fraction in (0, 1], got {warmup_factor}"
        )
    method = spec.get("warmup_method", "linear")
    if method not in WARMUP_METHODS:
        raise ValueError(
            f"scheduler.warmup_method: expected one of {WARMUP_METHODS}, got {method!r}"
        )
    steps = spec.get("warmup_steps", 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"scheduler.warmup_steps: expected an int >= 1, got {steps!r}")
    per_iter = spec.get("warmup_per_iter", False)
    if not isinstance(per_iter, bool):
        raise ValueError(f"scheduler.warmup_per_iter: expected true or false, got {per_iter!r}")
    min_factor = _check_number("scheduler.min_factor", spec.get("min_factor", 0.0))
    offset = spec.get("epoch_offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"scheduler.epoch_offset: expected an int >= 0, got {offset!r}")
    return LRSchedule(
        name=name,
        epochs=int(epochs),
        iters_per_epoch=max(int(iters_per_epoch), 1),
        milestones=tuple(milestones),
        gamma=_check_number("scheduler.gamma", spec.get("gamma", 0.1), strict=True),
        min_factor=min_factor,
        warmup_epochs=warmup_epochs,
        warmup_factor=warmup_factor,
        warmup_method=method,
        warmup_steps=steps,
        warmup_per_iter=per_iter,
        epoch_offset=offset,
    )
