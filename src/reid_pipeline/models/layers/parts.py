"""Horizontal part pooling (the stripe split of PCB, Sun et al. ECCV 2018, and of multi-granularity
models such as MGN, Wang et al. ACM MM 2018; DIMN splits into 2..6 stripes).

A ``(B, C, H, W)`` map is cut into ``n`` horizontal stripes (``split``):

- ``"partition"`` (default; DIMN's "equal segments"): stripe ``i`` covers rows
  ``[floor(i*H/n), floor((i+1)*H/n))``. Every row belongs to exactly one stripe; when ``n`` does
  not divide ``H`` the stripes have ``floor(H/n)`` or ``ceil(H/n)`` rows and the longer ones are
  spread evenly over the height (``H=6, n=4`` -> rows 0, 1-2, 3, 4-5; ``H=24, n=5`` -> 0-3, 4-8,
  9-13, 14-18, 19-23). When ``n`` divides ``H`` this is the equal split, computed by adaptive
  pooling (bit-identical to ``"adaptive"``).
- ``"adaptive"``: PyTorch's adaptive pooling, stripe ``i`` covers rows
  ``[floor(i*H/n), ceil((i+1)*H/n))``; when ``n`` does not divide ``H`` neighbouring stripes share
  one row (``H=16, n=3`` -> rows 0-5, 5-10, 10-15). The split of this project before the
  partition rule.

Neither drops a row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

POOLS = ("max", "avg")
#: how stripes are cut when ``n`` does not divide the height (module docstring)
SPLITS = ("partition", "adaptive")


def row_ranges(height: int, n: int, split: str = "partition") -> list[tuple[int, int]]:
    """The ``[start, end)`` rows of each of the ``n`` stripes of a map ``height`` rows tall."""
    if n < 1 or height < 1:
        raise ValueError(f"row_ranges needs height >= 1 and n >= 1, got height={height}, n={n}")
    if split not in SPLITS:
        raise ValueError(f"stripes must be one of {list(SPLITS)}, got {split!r}")
    if split == "partition":
        return [((i * height) // n, ((i + 1) * height) // n) for i in range(n)]
    return [((i * height) // n, -(-((i + 1) * height) // n)) for i in range(n)]


def horizontal_parts(x: Tensor, n: int, *, pool: str = "max", split: str = "partition") -> Tensor:
    """``(B, C, H, W)`` -> ``(B, C, n)``: stripe ``i`` pooled over its rows and all columns."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if split not in SPLITS:
        raise ValueError(f"stripes must be one of {list(SPLITS)}, got {split!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of parts must be a positive int, got {n!r}")
    if x.ndim != 4:
        raise ValueError(f"part pooling needs a (B, C, H, W) map, got {tuple(x.shape)}")
    if n > x.shape[2]:
        raise ValueError(
            f"cannot split a map of height {x.shape[2]} into {n} parts; use larger images or "
            "fewer parts"
        )
    height = x.shape[2]
    if split == "adaptive" or height % n == 0:
        fn = F.adaptive_max_pool2d if pool == "max" else F.adaptive_avg_pool2d
        return fn(x, (n, 1)).squeeze(3)  # (B, C, n)
    stripes = [x[:, :, a:b].flatten(2) for a, b in row_ranges(height, n, split)]  # (B, C, rows*W)
    pooled = [s.amax(dim=2) if pool == "max" else s.mean(dim=2) for s in stripes]
    return torch.stack(pooled, dim=2)  # (B, C, n)
