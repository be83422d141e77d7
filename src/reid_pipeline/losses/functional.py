"""Pieces shared by the metric losses: distance matrices, pid masks, branch selection.

Conventions every loss of this package follows:

- A loss applies itself to every branch of the model output (``output.logits`` for identity
  losses, ``output.feats`` for metric losses) and **sums** the per-branch values, as BoT's
  multi-branch descendants, PMM and DIMN do; ``branches: [i, ...]`` restricts it to some branches.
- Losses are computed in float32 whatever the autocast state: ``@fp32`` switches autocast off
  around every loss (and the public functions below), and the inputs are cast to float32, so a
  user calling a loss inside ``torch.autocast`` gets the same values, bit for bit, as without.
  (Autocast would otherwise run ``x @ y.t()`` in bf16 even on float32 inputs: on tight clusters
  of norm ~30 that moves distances by whole units and turns hard mining into noise.)
- No host syncs on the hot path: masks are applied by arithmetic (``torch.where``, finite fill
  values in max / min mining, ``masked_mean``), never by boolean indexing or ``.item()``; input
  checks that must read values run on a loss's first call, or on every call when the
  environment variable ``REID_LOSS_CHECKS=1`` is set.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

DISTANCES = ("euclidean", "cosine")
CHECKS_ENV = "REID_LOSS_CHECKS"  # "1": run the value checks that need a host sync on every call
_AUTOCAST_DEVICES = ("cpu", "cuda")
_F = TypeVar("_F", bound=Callable[..., Any])


def checks_every_call() -> bool:
    """True when ``REID_LOSS_CHECKS=1``: losses validate input values (a host sync) every call."""
    return os.environ.get(CHECKS_ENV) == "1"


def fp32(fn: _F) -> _F:
    """Run ``fn`` with autocast switched off on every device type where it is on.

    Device types looked at: cpu, cuda and those of ``fn``'s tensor arguments. Nothing is entered
    when autocast is off (the training loop calls the criterion outside autocast). ``fn`` must
    still cast its floating inputs to float32 (autocast off does not convert bf16 tensors).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        types = set(_AUTOCAST_DEVICES)
        types.update(a.device.type for a in args if isinstance(a, Tensor))
        active = [
            t
            for t in sorted(types)
            if torch.amp.is_autocast_available(t) and torch.is_autocast_enabled(t)
        ]
        if not active:
            return fn(*args, **kwargs)
        with contextlib.ExitStack() as stack:
            for device_type in active:
                stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def as_float32(x: Tensor) -> Tensor:
    """``x`` in float32 when it is a half-precision (fp16 / bf16) tensor, else ``x`` itself."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` (bool, same shape) is True, without a host sync.

    0 (with a graph) when ``mask`` is all False. Equal to ``values[mask].mean()`` up to the order
    of the float sum (identical when ``mask`` is all True).
    """
    total = torch.where(mask, values, 0.0).sum()
    return total / mask.sum().clamp(min=1).to(values.dtype)


@fp32
def pairwise_distance(x: Tensor, y: Tensor, *, metric: str = "euclidean") -> Tensor:
    """``(N, D) x (M, D) -> (N, M)`` euclidean (not squared) or cosine (1 - cos) distances.

    Computed in float32 (float64 inputs stay float64) with autocast off."""
    x, y = as_float32(x), as_float32(y)
    if metric == "euclidean":
        x2 = x.pow(2).sum(1, keepdim=True)  # (N, 1)
        y2 = y.pow(2).sum(1, keepdim=True).t()  # (1, M)
        sq = (x2 + y2 - 2.0 * x @ y.t()).clamp_min(1e-12)  # (N, M)
        return sq.sqrt()
    if metric == "cosine":
        return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()  # (N, M)
    raise ValueError(f"distance must be one of {list(DISTANCES)}, got {metric!r}")


@fp32
def self_distance(feats: Tensor, *, metric: str = "euclidean") -> Tensor:
    """``(B, D) -> (B, B)`` distances with an exact, gradient-free zero diagonal."""
    dist = pairwise_distance(feats, feats, metric=metric)  # (B, B)
    eye = torch.eye(len(feats), dtype=torch.bool, device=feats.device)
    return dist.masked_fill(eye, 0.0)


def pid_masks(pids: Tensor) -> tuple[Tensor, Tensor]:
    """``(B,) -> (is_pos, is_neg)``, both ``(B, B)`` bool; ``is_pos`` includes the diagonal."""
    is_pos = pids[:, None] == pids[None, :]  # (B, B)
    return is_pos, ~is_pos


def check_branches(loss: str, branches: Any) -> list[int] | None:
    """Validate the ``branches`` option: None, or a non-empty list of distinct indices >= 0."""
    if branches is None:
        return None
    ok = (
        isinstance(branches, Sequence)
        and not isinstance(branches, str)
        and len(branches) > 0
        and all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in branches)
        and all(b >= 0 for b in branches)
        and len(set(branches)) == len(branches)
    )
    if not ok:
        raise ValueError(
            f"{loss}: branches must be null (every branch) or a list of distinct branch indices "
            f">= 0, got {branches!r}"
        )
    return [int(b) for b in branches]


def select_branches(
    loss: str, field: str, tensors: Sequence[Tensor], branches: list[int] | None
) -> list[tuple[int, Tensor]]:
    """``(index, tensor)`` of the branches a loss reads from ``output.<field>``."""
    if len(tensors) == 0:
        raise ValueError(f"{loss}: the model output has no {field}; this loss needs output.{field}")
    if branches is None:
        return list(enumerate(tensors))
    bad = [b for b in branches if b >= len(tensors)]
    if bad:
        raise ValueError(
            f"{loss}: branches {bad} out of range; the model output has {len(tensors)} {field}"
        )
    return [(b, tensors[b]) for b in branches]


def check_choice(loss: str, name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{loss}: {name} must be one of {list(choices)}, got {value!r}")
    return value


def check_bool(loss: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{loss}: {name} must be true or false, got {value!r}")
    return value
