"""Pieces shared by the metric losses: distance matrices, pid masks, branch selection.

Conventions every loss of this package follows:

- A loss applies itself to every branch of the model output (``output.logits`` for identity
  losses, ``output.feats`` for metric losses) and **sums** the per-branch values, as BoT's
  multi-branch descendants, PMM and DIMN do; ``branches: [i, ...]`` restricts it to some branches.
- Losses are computed in float32 whatever the autocast dtype of the features.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

DISTANCES = ("euclidean", "cosine")


def pairwise_distance(x: Tensor, y: Tensor, *, metric: str = "euclidean") -> Tensor:
    """``(N, D) x (M, D) -> (N, M)`` euclidean (not squared) or cosine (1 - cos) distances."""
    if metric == "euclidean":
        x2 = x.pow(2).sum(1, keepdim=True)  # (N, 1)
        y2 = y.pow(2).sum(1, keepdim=True).t()  # (1, M)
        sq = (x2 + y2 - 2.0 * x @ y.t()).clamp_min(1e-12)  # (N, M)
        return sq.sqrt()
    if metric == "cosine":
        return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()  # (N, M)
    raise ValueError(f"distance must be one of {list(DISTANCES)}, got {metric!r}")


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
