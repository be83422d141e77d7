"""Query-gallery distances from embeddings, computed whole or streamed in query chunks.

Metrics (the two the field uses, plus the raw inner product some VI-ReID code ranks by):

- ``"cosine"``: ``1 - <q, g> / (max(|q|, 1e-12) max(|g|, 1e-12))`` (a zero vector is at distance
  1 from everything: ``torch.nn.functional.normalize`` semantics).
- ``"euclidean"``: ``sqrt(max(|q|^2 + |g|^2 - 2 <q, g>, 0))``, the plain Euclidean distance
  (torchreid ranks by its square, fast-reid by the root; the ranking is the same).
- ``"inner_product"``: ``-<q, g>`` on the raw features - what DEEN's / AGW's released VI-ReID
  test scripts rank by (``eval_*(-np.matmul(q, g.T), ...)``); offered to reproduce their numbers.

Backend, chosen by measurement (``benchmarks/bench_rank.py --gemm`` / ``--msmt``; README there):
on the project's 2-core machine numpy's OpenBLAS and torch's MKL float32 GEMMs ran within 15% of
each other (177 vs 176 GFLOP/s idle, 64 vs 75 under load), while importing torch alone raised the
process's peak RSS from 140 MB to 811 MB - a third of P2's 2 GB budget. So numpy arrays go through
numpy and the evaluation package never imports torch on its own; torch tensors stay in torch, on
their device (cuBLAS for CUDA features). Distances come back as numpy float32 (float64 when both
feature arrays are float64).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

Metric = Literal["cosine", "euclidean", "inner_product"]
METRICS: tuple[str, ...] = ("cosine", "euclidean", "inner_product")

#: Rows of the query x gallery distance block computed per GEMM when streaming.
DEFAULT_GEMM_ROWS = 512
_EPS = 1e-12


def is_tensor(x: Any) -> bool:
    """True for a torch tensor, without importing torch when the caller has not."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any, *, name: str) -> np.ndarray:
    """A numpy view (CPU tensors, arrays) or copy (CUDA tensors, lists) of ``x``."""
    if is_tensor(x):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {exc}") from exc


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    return metric


def as_features(x: Any, *, name: str) -> Any:
    """Validate a (N, D) feature array; return it as float32 / float64 numpy or torch.

    Torch tensors stay tensors on their device; float64 stays float64, every other real dtype
    becomes float32. Raises ValueError naming ``name`` for a wrong rank, an empty array, a
    non-numeric dtype or NaN / infinite values.
    """
    if is_tensor(x):
        t = x.detach()
        if t.is_complex():
            raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
        if t.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D (num_images, dim) array, got shape {tuple(t.shape)}"
            )
        if t.shape[0] == 0 or t.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); expected at least one row")
        import torch

        t = t if t.dtype == torch.float64 else t.to(torch.float32)
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"{name} contains NaN or infinite values (first at row {row})")
        return t
    arr = to_numpy(x, name=name)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (num_images, dim) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one row")
    arr = np.ascontiguousarray(arr, dtype=np.float64 if arr.dtype == np.float64 else np.float32)
    finite = np.isfinite(arr.min(axis=1)) & np.isfinite(arr.max(axis=1))
    if not finite.all():
        raise ValueError(
            f"{name} contains NaN or infinite values (first at row {int(np.argmin(finite))})"
        )
    return arr


def take_rows(feats: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of a numpy array or torch tensor (on its device)."""
    if is_tensor(feats):
        import torch

        return feats[torch.as_tensor(idx, device=feats.device)]
    return np.asarray(feats)[idx]


def l2_normalize_rows(x: Any) -> Any:
    """``x / max(|x|, 1e-12)`` row-wise, numpy or torch."""
    if is_tensor(x):
        import torch

        return torch.nn.functional.normalize(x, dim=1, eps=_EPS)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    return x / np.maximum(norm, _EPS).astype(x.dtype)[:, None]


def row_sq_norms(x: Any) -> Any:
    if is_tensor(x):
        return (x * x).sum(dim=1)
    return np.einsum("ij,ij->i", x, x)


def common_backend(q: Any, g: Any) -> tuple[Any, Any]:
    """Both as torch (on ``q``'s device, or ``g``'s) if either is a tensor, else both numpy; both
    float64 only if both are."""
    if is_tensor(q) or is_tensor(g):
        import torch

        device = q.device if is_tensor(q) else g.device
        q = torch.as_tensor(q, device=device)
        g = torch.as_tensor(g, device=device)
        dtype = torch.float64 if q.dtype == g.dtype == torch.float64 else torch.float32
        return q.to(dtype), g.to(dtype)
    dtype = np.float64 if q.dtype == g.dtype == np.float64 else np.float32
    return q.astype(dtype, copy=False), g.astype(dtype, copy=False)


class DistanceBlocks:
    """Features and what the metric needs of them, without copies; ``block(lo, hi, g_lo, g_hi)``
    gives ``distance(q[lo:hi], g[g_lo:g_hi])`` as a numpy array.

    Cosine scales the GEMM output by the inverse norms instead of normalising copies of the
    features (at MSMT17 scale a normalised gallery copy alone would be 0.67 GB).
    """

    def __init__(self, q: Any, g: Any, metric: str) -> None:
        if q.shape[1] != g.shape[1]:
            raise ValueError(
                f"q_feats and g_feats must have the same feature dimension, got {q.shape[1]} and "
                f"{g.shape[1]}"
            )
        q, g = common_backend(q, g)
        self.q, self.g, self.metric = q, g, metric
        self.torch = is_tensor(q)
        self.q_aux = self.g_aux = None
        if metric == "euclidean":
            self.q_aux, self.g_aux = row_sq_norms(q), row_sq_norms(g)
        elif metric == "cosine":
            self.q_aux, self.g_aux = self._inv_norms(q), self._inv_norms(g)

    def _inv_norms(self, x: Any) -> Any:
        norm = row_sq_norms(x) ** 0.5
        if self.torch:
            return 1.0 / norm.clamp(min=_EPS)
        return (1.0 / np.maximum(norm, _EPS)).astype(x.dtype)

    def block(self, lo: int, hi: int, g_lo: int = 0, g_hi: int | None = None) -> np.ndarray:
        g = self.g[g_lo:g_hi]
        qa = None if self.q_aux is None else self.q_aux[lo:hi, None]
        ga = None if self.g_aux is None else self.g_aux[None, g_lo:g_hi]
        if self.torch:
            import torch

            with torch.no_grad():
                prod = self.q[lo:hi] @ g.T  # (B, G)
                if self.metric == "cosine":
                    prod.mul_(qa).mul_(ga).neg_().add_(1.0)
                elif self.metric == "inner_product":
                    prod.neg_()
                else:
                    prod.mul_(-2.0).add_(qa).add_(ga).clamp_(min=0.0).sqrt_()
                return prod.cpu().numpy()
        prod = self.q[lo:hi] @ g.T  # (B, G)
        if self.metric == "cosine":
            prod *= qa
            prod *= ga
            np.subtract(1.0, prod, out=prod)
        elif self.metric == "inner_product":
            np.negative(prod, out=prod)
        else:
            prod *= -2.0
            prod += qa
            prod += ga
            np.maximum(prod, 0.0, out=prod)
            np.sqrt(prod, out=prod)
        return prod

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``distance(q[i[k]], g[j[k]])`` for every k (the diagonal of ``block``)."""
        if self.torch:
            import torch

            with torch.no_grad():
                ti = torch.as_tensor(i, device=self.q.device)
                tj = torch.as_tensor(j, device=self.q.device)
                prod = (self.q[ti] * self.g[tj]).sum(dim=1)
                if self.metric == "euclidean":
                    prod = (self.q_aux[ti] + self.g_aux[tj] - 2.0 * prod).clamp(min=0.0).sqrt()
                elif self.metric == "cosine":
                    prod = 1.0 - prod * self.q_aux[ti] * self.g_aux[tj]
                else:
                    prod = -prod
                return prod.cpu().numpy()
        prod = np.einsum("ij,ij->i", self.q[i], self.g[j])
        if self.metric == "euclidean":
            return np.sqrt(np.maximum(self.q_aux[i] + self.g_aux[j] - 2.0 * prod, 0.0))
        if self.metric == "cosine":
            return 1.0 - prod * self.q_aux[i] * self.g_aux[j]
        return -prod


def stream_distance_blocks(
    q: Any, g: Any, *, metric: str, chunk_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """``iter_distance_blocks`` for features already checked by ``as_features``."""
    blocks = DistanceBlocks(q, g, metric)
    for start in range(0, q.shape[0], chunk_size):
        yield start, blocks.block(start, min(start + chunk_size, q.shape[0]))


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
    q = as_features(q_feats, name="q_feats")
    g = as_features(g_feats, name="g_feats")
    yield from stream_distance_blocks(q, g, metric=metric, chunk_size=chunk_size)


def pairwise_distance(
    q_feats: Any,
    g_feats: Any,
    *,
    metric: Metric = "cosine",
    chunk_size: int = DEFAULT_GEMM_ROWS,
) -> np.ndarray:
    """The full (Q, G) distance matrix; the same numbers ``iter_distance_blocks`` streams."""
    blocks = iter_distance_blocks(q_feats, g_feats, metric=metric, chunk_size=chunk_size)
    return np.concatenate([block for _, block in blocks], axis=0)


def distance_rows(
    q_feats: Any,
    g_feats: Any,
    rows: Any,
    *,
    metric: Metric = "cosine",
    chunk_size: int = DEFAULT_GEMM_ROWS,
) -> np.ndarray:
    """Distances from the query rows ``rows`` to every gallery row: ``(len(rows), G)``.

    What a rank list of a few queries needs, without the full Q x G matrix: row ``k`` holds
    ``distance(q_feats[rows[k]], g_feats)`` with the metric the protocols rank by (``cosine``:
    ``1 - cos``, ``euclidean``, ``inner_product``; features are not normalised first, the
    cosine divides by the norms). numpy float32 (float64 when both feature arrays are float64),
    equal to the matching rows of ``pairwise_distance`` up to the rounding of the GEMM. ``rows``:
    query indices (any order, repeats allowed); plain distances, never re-ranked ones.
    """
    check_metric(metric)
    q = as_features(q_feats, name="q_feats")
    idx = to_numpy(rows, name="rows")
    if idx.size == 0:
        raise ValueError("rows is empty; give at least one query index")
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise ValueError(
            f"rows must be a 1-D sequence of query indices (integers), got shape {idx.shape} and "
            f"dtype {idx.dtype}"
        )
    n = q.shape[0]
    if idx.min() < 0 or idx.max() >= n:
        bad = int(idx[(idx < 0) | (idx >= n)][0])
        raise ValueError(f"rows holds {bad}, but q_feats has {n} rows (indices 0..{n - 1})")
    return pairwise_distance(
        take_rows(q, idx.astype(np.int64)), g_feats, metric=metric, chunk_size=chunk_size
    )
