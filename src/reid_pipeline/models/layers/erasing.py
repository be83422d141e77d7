"""Saliency-guided window erasing on feature maps.

Used by DIMN's suppression branch (DFM branch 2: "find the most salient region and erase it,
forcing the network to use the rest"; the authors describe the idea only, the mechanics here are
our design): per sample, take the arg-max cell of a saliency map and zero a window around it - a
band of rows (full width by default), in the spirit of Batch DropBlock (Dai et al., ICCV 2019)
but placed by saliency instead of at random.

Window placement (ours): the window is ``rows`` tall and ``cols`` wide, centred on the arg-max
cell (start ``argmax - size // 2``) and shifted back inside the map where it would cross an edge,
so every sample loses exactly ``rows x cols`` cells. The keep-mask is computed on the saliency grid
and can be resized (nearest) to another map of a proportional size, e.g. the layer-3 output when
layer 4 has stride 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def window_extent(size: int, ratio: float) -> int:
    """Cells covered by a window of ``ratio`` of ``size``: ``round(ratio * size)``, at least 1."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"an erasing window ratio must be in (0, 1], got {ratio!r}")
    return max(1, min(size, round(ratio * size)))


def _window_starts(centre: Tensor, extent: int, size: int) -> Tensor:
    return (centre - extent // 2).clamp(min=0, max=size - extent)


def argmax_window_mask(saliency: Tensor, *, rows: int, cols: int | None = None) -> Tensor:
    """Keep-mask ``(B, 1, H, W)``: 0 on the ``rows x cols`` window around each arg-max, 1 else.

    ``saliency`` is ``(B, H, W)`` or ``(B, 1, H, W)``; ``cols=None`` means the full width. Ties for
    the maximum go to the first cell in row-major order (``torch.argmax``).
    """
    if saliency.ndim == 4 and saliency.shape[1] == 1:
        saliency = saliency[:, 0]
    if saliency.ndim != 3:
        raise ValueError(f"saliency must be (B, H, W) or (B, 1, H, W), got {tuple(saliency.shape)}")
    _, h, w = saliency.shape
    cols = w if cols is None else cols
    if not 1 <= rows <= h or not 1 <= cols <= w:
        raise ValueError(
            f"erasing window {rows}x{cols} does not fit a {h}x{w} saliency map (need 1 <= rows <= "
            f"{h} and 1 <= cols <= {w})"
        )
    flat = saliency.detach().flatten(1).argmax(dim=1)  # (B,)
    r0 = _window_starts(flat // w, rows, h)  # (B,)
    c0 = _window_starts(flat % w, cols, w)  # (B,)
    ys = torch.arange(h, device=saliency.device)
    xs = torch.arange(w, device=saliency.device)
    in_rows = (ys[None] >= r0[:, None]) & (ys[None] < (r0 + rows)[:, None])  # (B, H)
    in_cols = (xs[None] >= c0[:, None]) & (xs[None] < (c0 + cols)[:, None])  # (B, W)
    erase = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
    return (~erase)[:, None].to(saliency.dtype)  # (B, 1, H, W)


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of a ``(B, 1, h, w)`` keep-mask to ``size`` (exact for integer
    ratios: each saliency cell becomes a block of cells)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=size, mode="nearest")  # (B, 1, *size)
