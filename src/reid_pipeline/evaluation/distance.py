"""Query-gallery distances from embeddings, computed whole or streamed in query chunks.

Metrics (the two the field uses, plus the raw inner product some VI-ReID code ranks by):

- ``"cosine"``: ``1 - <q/|q|, g/|g|>`` (a zero vector is left as zero, so its distance to every
  gallery item is 1; this is ``torch.nn.functional.normalize`` semantics).
- ``"euclidean"``: ``sqrt(max(|q|^2 + |g|^2 - 2 <q, g>, 0))``, the plain Euclidean distance
  (torchreid ranks by its square, fast-reid by the root; the ranking is the same).
- ``"inner_product"``: ``-<q, g>`` on the raw features - what DEEN's / AGW's released VI-ReID
  test scripts rank by (``eval_*(-np.matmul(q, g.T), ...)``); offered to reproduce their numbers.

The GEMM runs in torch (MKL on CPU, cuBLAS when the features are CUDA tensors): on the project's
2-core machine torch's float32 GEMM measured 75 GFLOP/s against 64 for numpy's OpenBLAS on the
MSMT17-shaped product (``benchmarks/bench_rank.py --gemm`` repeats the measurement). Distances
come back as numpy float32 (float64 when both feature arrays are float64).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch

Metric = Literal["cosine", "euclidean", "inner_product"]
METRICS: tuple[str, ...] = ("cosine", "euclidean", "inner_product")

#: Rows of the query x gallery distance block computed per GEMM when streaming.
DEFAULT_GEMM_ROWS = 512


def to_numpy(x: Any, *, name: str) -> np.ndarray:
    """A numpy view (CPU torch tensors, numpy arrays) or copy (CUDA tensors, lists) of ``x``."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {exc}") from exc


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    return metric


def as_feature_tensor(x: Any, *, name: str) -> torch.Tensor:
    """Validate a (N, D) feature array/tensor and return it as a float torch tensor.

    float64 stays float64, every other real dtype becomes float32; the device is kept.
    Raises ValueError naming ``name`` for a wrong rank, an empty array, a non-numeric dtype or
    NaN / infinite values.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        arr = to_numpy(x, name=name)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (num_images, dim) array, got shape {tuple(t.shape)}"
        )
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); expected at least one row")
    if t.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.dtype != torch.float64:
        t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        bad = torch.nonzero(~torch.isfinite(t))[0].tolist()
        raise ValueError(f"{name} contains NaN or infinite values (first at row {bad[0]})")
    return t


def _prepare(
    q: torch.Tensor, g: torch.Tensor, metric: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    if q.shape[1] != g.shape[1]:
        raise ValueError(
            f"q_feats and g_feats must have the same feature dimension, got {q.shape[1]} and "
            f"{g.shape[1]}"
        )
    dtype = torch.float64 if (q.dtype == torch.float64 and g.dtype == torch.float64) else None
    dtype = dtype or torch.float32
    q, g = q.to(dtype), g.to(dtype=dtype, device=q.device)
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        g = torch.nn.functional.normalize(g, dim=1)
        return q, g, None, None
    if metric == "euclidean":
        return q, g, (q * q).sum(dim=1), (g * g).sum(dim=1)
    return q, g, None, None


def _block(
    q: torch.Tensor,
    g: torch.Tensor,
    q_sq: torch.Tensor | None,
    g_sq: torch.Tensor | None,
    metric: str,
) -> torch.Tensor:
    prod = q @ g.T  # (B, G)
    if metric == "cosine":
        return prod.neg_().add_(1.0)
    if metric == "inner_product":
        return prod.neg_()
    if q_sq is None or g_sq is None:
        raise RuntimeError("euclidean distances need the squared norms")
    prod.mul_(-2.0).add_(q_sq[:, None]).add_(g_sq[None, :])  # |q|^2 + |g|^2 - 2 q.g
    return prod.clamp_(min=0.0).sqrt_()


def iter_distance_blocks(
    q_feats: Any,
    g_feats: Any,
    *,
    metric: Metric = "cosine",
    chunk_size: int = DEFAULT_GEMM_ROWS,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, block)`` with ``block = distance(q_feats[start:start+chunk], g_feats)``.

    Only one (chunk, G) block is alive at a time, so ``Q x G`` never has to fit in memory.
    """
    check_metric(metric)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    q = as_feature_tensor(q_feats, name="q_feats")
    g = as_feature_tensor(g_feats, name="g_feats")
    yield from stream_distance_blocks(q, g, metric=metric, chunk_size=chunk_size)


def stream_distance_blocks(
    q: torch.Tensor, g: torch.Tensor, *, metric: str, chunk_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """``iter_distance_blocks`` for tensors already checked by ``as_feature_tensor``."""
    q, g, q_sq, g_sq = _prepare(q, g, metric)
    with torch.no_grad():
        for start in range(0, q.shape[0], chunk_size):
            stop = min(start + chunk_size, q.shape[0])
            sq = None if q_sq is None else q_sq[start:stop]
            block = _block(q[start:stop], g, sq, g_sq, metric)
            yield start, block.cpu().numpy()


def pairwise_distance(
    q_feats: Any,
    g_feats: Any,
    *,
    metric: Metric = "cosine",
    chunk_size: int = DEFAULT_GEMM_ROWS,
) -> np.ndarray:
    """The full (Q, G) distance matrix; the same numbers ``iter_distance_blocks`` streams."""
    blocks = [
        block
        for _, block in iter_distance_blocks(q_feats, g_feats, metric=metric, chunk_size=chunk_size)
    ]
    return np.concatenate(blocks, axis=0)


def paired_distance(a_feats: Any, b_feats: Any, *, metric: Metric = "cosine") -> np.ndarray:
    """Distances of matching rows, ``d(a[i], b[i])`` - the diagonal of ``pairwise_distance``."""
    check_metric(metric)
    a = as_feature_tensor(a_feats, name="a_feats")
    b = as_feature_tensor(b_feats, name="b_feats")
    if a.shape != b.shape:
        raise ValueError(
            f"a_feats and b_feats must have the same shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    a, b, a_sq, b_sq = _prepare(a, b, metric)
    with torch.no_grad():
        prod = (a * b).sum(dim=1)
        if metric == "cosine":
            out = 1.0 - prod
        elif metric == "inner_product":
            out = -prod
        else:
            if a_sq is None or b_sq is None:
                raise RuntimeError("euclidean distances need the squared norms")
            out = (a_sq + b_sq - 2.0 * prod).clamp(min=0.0).sqrt()
    return out.cpu().numpy()
