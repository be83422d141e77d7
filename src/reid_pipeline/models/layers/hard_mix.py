"""Attentive Hard-Mix (A-Hard-Mix) of PMM (Zhang et al., "Progressive Multi-stage Feature Mix for
Person Re-Identification", ICASSP 2021, arXiv:2007.08779; official code
github.com/crazydemo/Progressive-Multi-stage-Feature-Mix-for-Person-Re-Identification, read for the
details, not copied).

Given a feature map ``z`` ``(B, C, H, W)`` and a class-activation map ``cam`` ``(B, H, W)`` on the
same grid:

1. the grid is tiled into blocks of ``rows x cols`` cells (3 x 2 in the paper: 8 x 4 blocks on the
   24 x 8 map of a 384 x 128 input); each block is scored by the SUM of the CAM inside it
   (official). When ``H`` or ``W`` is not a multiple of the block size the last row / column of
   blocks is smaller (``torch.split`` semantics, as the official tiling) and is scored by the sum
   of its cells;
2. the ``top_k`` highest-scoring blocks of each sample (3 in the paper) form a mask ``m`` (0 inside
   them, 1 elsewhere);
3. each sample gets a partner of a DIFFERENT identity, drawn uniformly at random among the batch
   samples whose pid differs (torch RNG, so reproducible under ``torch.manual_seed``). The official
   code assumed K = 4 consecutive samples per identity and drew from the other positions; we check
   the pid itself, so any sampler layout works;
4. ``z_mixed = m * z + (1 - m) * z[partner]`` on all channels. Labels are not mixed.

What is ours: the generalisation to any map size / block size / top-k (the official code
hard-coded a 24 x 8 map with 3 x 2 blocks) and the pid-based partner choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_block(block_size: Sequence[int]) -> tuple[int, int]:
    if (
        isinstance(block_size, str)
        or len(block_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in block_size)
    ):
        raise ValueError(
            f"block_size must be two positive ints (rows, cols) of feature-map cells, got "
            f"{block_size!r}"
        )
    return int(block_size[0]), int(block_size[1])


def block_grid(height: int, width: int, block_size: Sequence[int]) -> tuple[int, int]:
    """Block rows and columns tiling a ``height x width`` map (the last ones may be smaller)."""
    rows, cols = _check_block(block_size)
    return -(-height // rows), -(-width // cols)


def block_scores(cam: Tensor, block_size: Sequence[int]) -> Tensor:
    """Sum of ``cam`` ``(B, H, W)`` inside each block -> ``(B, n_block_rows, n_block_cols)``."""
    rows, cols = _check_block(block_size)
    if cam.ndim != 3:
        raise ValueError(f"cam must have shape (B, H, W), got {tuple(cam.shape)}")
    b, h, w = cam.shape
    nr, nc = block_grid(h, w, block_size)
    padded = F.pad(cam, (0, nc * cols - w, 0, nr * rows - h))  # (B, nr*rows, nc*cols), zeros
    return padded.reshape(b, nr, rows, nc, cols).sum(dim=(2, 4))  # (B, nr, nc)


def topk_block_mask(cam: Tensor, *, block_size: Sequence[int], top_k: int) -> Tensor:
    """Keep-mask ``(B, 1, H, W)``: 0 on the ``top_k`` highest-scoring blocks of each sample, 1 else.

    Ties between equal block scores (common: the CAM is ReLU'd, so many blocks score 0) go to the
    first blocks in row-major order (a stable sort), the same on every device.
    """
    rows, cols = _check_block(block_size)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    scores = block_scores(cam, (rows, cols))  # (B, nr, nc)
    b, nr, nc = scores.shape
    h, w = cam.shape[1:]
    if top_k > nr * nc:
        raise ValueError(
            f"top_k={top_k} exceeds the {nr * nc} blocks of {rows}x{cols} cells that tile the "
            f"{h}x{w} feature map; lower top_k or block_size, or use larger images"
        )
    order = scores.flatten(1).sort(dim=1, descending=True, stable=True).indices  # (B, nr*nc)
    idx = order[:, :top_k]  # (B, top_k)
    picked = torch.zeros(b, nr * nc, device=cam.device, dtype=torch.bool)
    picked.scatter_(1, idx, True)
    picked = picked.reshape(b, nr, nc)
    cells = picked.repeat_interleave(rows, dim=1).repeat_interleave(cols, dim=2)  # (B, nr*rows, .)
    keep = ~cells[:, :h, :w]  # (B, H, W)
    return keep[:, None].to(cam.dtype)  # (B, 1, H, W)


def has_lonely_sample(pids: Tensor) -> Tensor:
    """Whether some sample has no sample of another identity in the batch: a ``bool`` tensor
    (no host sync; :func:`check_partners` reads it)."""
    if pids.ndim != 1:
        raise ValueError(f"pids must have shape (B,), got {tuple(pids.shape)}")
    if pids.numel() == 0:
        return torch.zeros((), dtype=torch.bool, device=pids.device)
    return (pids == pids[:1]).all()  # a sample is lonely only when every pid is the same


def check_partners(pids: Tensor) -> None:
    """Refuse a batch in which some sample has no partner of another identity."""
    if bool(has_lonely_sample(pids)):
        raise ValueError(
            "A-Hard-Mix needs a partner of another identity for every sample, but the batch "
            f"holds only pid(s) {sorted(set(pids.tolist()))}; sample at least two identities per "
            "batch (P >= 2 in the PK sampler)"
        )


def pick_partners(
    pids: Tensor, *, generator: torch.Generator | None = None, check: bool = True
) -> Tensor:
    """For each sample, the index of a random sample with a DIFFERENT pid -> ``LongTensor[B]``.

    Uniform over the eligible samples, drawn with torch's RNG (``generator`` or the default one of
    ``pids``' device), so ``torch.manual_seed`` makes it reproducible. ``check=False`` skips
    :func:`check_partners` (a host sync) for a caller that checked the batch already.
    """
    if check:
        check_partners(pids)
    elif pids.ndim != 1:
        raise ValueError(f"pids must have shape (B,), got {tuple(pids.shape)}")
    eligible = pids[:, None] != pids[None, :]  # (B, B)
    noise = torch.rand(eligible.shape, device=pids.device, generator=generator)  # (B, B)
    noise = noise.masked_fill(~eligible, -1.0)
    return noise.argmax(dim=1)


def hard_mix(z: Tensor, keep: Tensor, partners: Tensor) -> Tensor:
    """``keep * z + (1 - keep) * z[partners]`` (all channels). ``keep`` is ``(B, 1, H, W)``."""
    return keep * z + (1 - keep) * z[partners]  # (B, C, H, W)


class AttentiveHardMix(nn.Module):
    """A-Hard-Mix as one call: ``forward(z, cam, pids) -> (z_mixed, keep_mask, partners)``.

    ``block_size`` (rows, cols) in feature-map cells and ``top_k`` as in the module docstring.
    Parameter-free; the caller applies it only in training.
    """

    def __init__(self, *, block_size: Sequence[int] = (3, 2), top_k: int = 3) -> None:
        super().__init__()
        self.block_size = _check_block(block_size)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        self.top_k = top_k

    def forward(
        self, z: Tensor, cam: Tensor, pids: Tensor, *, check: bool = True
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``check=False``: the caller has run :func:`check_partners` on ``pids``."""
        if z.ndim != 4 or cam.shape != (z.shape[0], *z.shape[2:]):
            raise ValueError(
                f"A-Hard-Mix needs cam (B, H, W) on the grid of z (B, C, H, W); got z "
                f"{tuple(z.shape)} and cam {tuple(cam.shape)}"
            )
        keep = topk_block_mask(cam, block_size=self.block_size, top_k=self.top_k)  # (B,1,H,W)
        partners = pick_partners(pids.to(z.device), check=check)  # (B,)
        return hard_mix(z, keep.to(z.dtype), partners), keep, partners

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, top_k={self.top_k}"
