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
"""

from __future__ import annotations

from typing import Any

import torch

from reid_pipeline.evaluation.distance import as_feature_tensor


def _like(result: torch.Tensor, template: Any) -> Any:
    return result if isinstance(template, torch.Tensor) else result.cpu().numpy()


def flip_average(feats: Any, flipped_feats: Any, *, normalize_first: bool = False) -> Any:
    """``(feats + flipped_feats) / 2`` (each L2-normalised first if ``normalize_first``).

    Returns the input's type (torch tensor on its device, or numpy array).
    """
    a = as_feature_tensor(feats, name="feats")
    b = as_feature_tensor(flipped_feats, name="flipped_feats")
    if a.shape != b.shape:
        raise ValueError(
            f"feats and flipped_feats must have the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    b = b.to(device=a.device, dtype=a.dtype)
    if normalize_first:
        a = torch.nn.functional.normalize(a, dim=1)
        b = torch.nn.functional.normalize(b, dim=1)
    return _like((a + b) / 2, feats)


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
    q = as_feature_tensor(q_feats, name="q_feats")
    g = as_feature_tensor(g_feats, name="g_feats")
    if q.shape[1] != g.shape[1]:
        raise ValueError(
            f"q_feats and g_feats must have the same feature dimension, got {q.shape[1]} and "
            f"{g.shape[1]}"
        )
    x = torch.nn.functional.normalize(torch.cat([q, g.to(device=q.device, dtype=q.dtype)]), dim=1)
    if k > x.shape[0]:
        raise ValueError(f"k={k} exceeds the {x.shape[0]} query + gallery vectors")
    with torch.no_grad():
        for _ in range(iterations):
            out = torch.empty_like(x)
            for start in range(0, x.shape[0], chunk_size):
                sims = x[start : start + chunk_size] @ x.T  # (B, N)
                top, idx = torch.topk(sims, k, dim=1)  # (B, k), nearest first
                weights = top.clamp(min=0.0).pow(float(alpha))  # 0 ** 0 = 1: alpha 0 is AQE
                out[start : start + chunk_size] = torch.einsum("bk,bkd->bd", weights, x[idx])
            x = torch.nn.functional.normalize(out, dim=1)
    nq = q.shape[0]
    return _like(x[:nq], q_feats), _like(x[nq:], g_feats)


def l2_normalize(feats: Any) -> Any:
    """Row-wise L2 normalisation (zero rows stay zero); keeps the input's type."""
    t = as_feature_tensor(feats, name="feats")
    return _like(torch.nn.functional.normalize(t, dim=1), feats)
