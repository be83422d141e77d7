"""Small test-time feature helpers: flip averaging and (alpha-weighted) average query expansion.

- ``flip_average``: the mean of the embeddings of an image and of its horizontal flip (the usual
  test-time augmentation; BoT / AGW / DEEN test scripts add the two, which ranks identically).
- ``average_query_expansion``: AQE (Chum et al., "Total Recall", ICCV 2007) with the alpha
  weighting of alpha-QE (Radenovic, Tolias, Chum, "Fine-tuning CNN Image Retrieval with No Human
  Annotation", TPAMI 2018): every query and gallery vector is replaced by the normalised sum of its
  ``k`` nearest neighbours in the joint (query + gallery) database - itself included - weighted by
  ``max(cos, 0) ** alpha``; ``alpha = 0`` is plain AQE. Ours: the sum is over L2-normalised
  vectors (fast-reid sums the raw ones), negative similarities get weight 0 (a real power of a
  negative number is undefined), and the neighbours are found chunk by chunk so memory is
  O(chunk x N) instead of N x N.

numpy in, numpy out; torch in, torch out (on the tensor's device).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reid_pipeline.evaluation.distance import (
    as_features,
    common_backend,
    is_tensor,
    l2_normalize_rows,
)


def _like(result: Any, template: Any) -> Any:
    if is_tensor(template):
        return result
    return result.cpu().numpy() if is_tensor(result) else result


def flip_average(feats: Any, flipped_feats: Any, *, normalize_first: bool = False) -> Any:
    """``(feats + flipped_feats) / 2`` (each L2-normalised first if ``normalize_first``)."""
    a = as_features(feats, name="feats")
    b = as_features(flipped_feats, name="flipped_feats")
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"feats and flipped_feats must have the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    a, b = common_backend(a, b)
    if normalize_first:
        a, b = l2_normalize_rows(a), l2_normalize_rows(b)
    return _like((a + b) / 2, feats)


def l2_normalize(feats: Any) -> Any:
    """Row-wise L2 normalisation (zero rows stay zero); keeps the input's type."""
    return _like(l2_normalize_rows(as_features(feats, name="feats")), feats)


def _top_k(sims: Any, k: int) -> tuple[Any, Any]:
    """(values, indices) of the k largest per row, largest first."""
    if is_tensor(sims):
        import torch

        return torch.topk(sims, k, dim=1)
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(sims, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def average_query_expansion(
    q_feats: Any,
    g_feats: Any,
    *,
    k: int = 10,
    alpha: float = 3.0,
    iterations: int = 1,
    chunk_size: int = 1024,
) -> tuple[Any, Any]:
    """alpha-QE of query and gallery features in their joint database; returns (q, g), L2-normed.

    ``k``: neighbours summed (itself included); ``alpha``: similarity exponent (0 = plain AQE);
    ``iterations``: how many times the expansion is applied; ``chunk_size``: rows per GEMM.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha < 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    q, g = common_backend(
        as_features(q_feats, name="q_feats"), as_features(g_feats, name="g_feats")
    )
    if q.shape[1] != g.shape[1]:
        raise ValueError(
            f"q_feats and g_feats must have the same feature dimension, got {q.shape[1]} and "
            f"{g.shape[1]}"
        )
    nq, n = q.shape[0], q.shape[0] + g.shape[0]
    if k > n:
        raise ValueError(f"k={k} exceeds the {n} query + gallery vectors")
    if is_tensor(q):
        import torch

        x = l2_normalize_rows(torch.cat([q, g]))
    else:
        x = l2_normalize_rows(np.concatenate([q, g]))
    for _ in range(iterations):
        out = x * 0
        for start in range(0, n, chunk_size):
            sims = x[start : start + chunk_size] @ x.T  # (B, N)
            top, idx = _top_k(sims, k)  # (B, k), nearest first
            weights = (top.clip(min=0.0) if is_tensor(top) else np.maximum(top, 0.0)) ** float(
                alpha
            )
            out[start : start + chunk_size] = (weights[:, :, None] * x[idx]).sum(1)
        x = l2_normalize_rows(out)
    return _like(x[:nq], q_feats), _like(x[nq:], g_feats)
