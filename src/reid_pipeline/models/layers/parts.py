"""Horizontal part pooling (the stripe split of PCB, Sun et al. ECCV 2018, and of multi-granularity
models such as MGN, Wang et al. ACM MM 2018; DIMN splits into 2..6 stripes).

A ``(B, C, H, W)`` map is cut into ``n`` horizontal stripes with PyTorch's adaptive pooling
semantics, so any height works: stripe ``i`` covers rows ``[floor(i*H/n), ceil((i+1)*H/n))``.
When ``n`` divides ``H`` the stripes are equal and disjoint; otherwise neighbouring stripes share
one row (e.g. ``H=16, n=3`` -> rows 0-5, 5-10, 10-15) and every stripe has ``ceil(H/n)`` or
``ceil(H/n)+1`` rows - no row is dropped, unlike a floor split.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

POOLS = ("max", "avg")


def row_ranges(height: int, n: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` rows of each of the ``n`` stripes of a map ``height`` rows tall."""
    if n < 1 or height < 1:
        raise ValueError(f"row_ranges needs height >= 1 and n >= 1, got height={height}, n={n}")
    return [((i * height) // n, -(-((i + 1) * height) // n)) for i in range(n)]


def horizontal_parts(x: Tensor, n: int, *, pool: str = "max") -> Tensor:
    """``(B, C, H, W)`` -> ``(B, C, n)``: stripe ``i`` pooled over its rows and all columns."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of parts must be a positive int, got {n!r}")
    if x.ndim != 4:
        raise ValueError(f"part pooling needs a (B, C, H, W) map, got {tuple(x.shape)}")
    if n > x.shape[2]:
        raise ValueError(
            f"cannot split a map of height {x.shape[2]} into {n} parts; use larger images or "
            "fewer parts"
        )
    fn = F.adaptive_max_pool2d if pool == "max" else F.adaptive_avg_pool2d
    return fn(x, (n, 1)).squeeze(3)  # (B, C, n)
