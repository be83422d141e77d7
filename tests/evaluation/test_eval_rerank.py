"""k-reciprocal re-ranking: the fast exact version against a straightforward loop written from the
paper, the memory-bounded feature version against the exact one, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_pipeline.evaluation import (
    evaluate_from_features,
    evaluate_rank,
    iter_re_ranked,
    pairwise_distance,
    re_ranking,
    re_ranking_from_features,
)
from reid_pipeline.evaluation.neighbours import MatrixSource, neighbours


def straightforward_rerank(  # noqa: PLR0917 - mirrors re_ranking's signature
    q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int, k2: int, lam: float
) -> np.ndarray:
    """Zhong et al. (CVPR 2017) one image at a time, with dense V and set operations."""
    nq = q_g.shape[0]
    joint = np.block([[q_q, q_g], [q_g.T, g_g]])
    m = np.square(joint).astype(np.float32)
    od = (m / m.max(axis=0)).T  # row i normalised by the maximum of column i
    n = len(od)
    rank = np.argsort(od, axis=1, kind="stable")

    def reciprocal(i: int, k: int) -> list[int]:
        return [int(f) for f in rank[i, : k + 1] if i in rank[f, : k + 1]]

    v = np.zeros((n, n))
    half = int(np.around(k1 / 2))
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r)
        for c in r:
            h = reciprocal(c, half)
            if len(set(h) & set(r)) > 2 / 3 * len(h):
                expanded |= set(h)
        cols = sorted(expanded)
        w = np.exp(-od[i, cols].astype(np.float64))
        v[i, cols] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.empty((nq, n))
    for i in range(nq):
        jaccard[i] = 1 - np.minimum(v[i], v).sum(axis=1) / np.maximum(v[i], v).sum(axis=1)
    return ((1 - lam) * jaccard + lam * od[:nq])[:, nq:]


def _problem(nq: int, ng: int, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    q, g, _ = _problem_with_ids(nq, ng, dim, seed)
    return q, g


def _problem_with_ids(
    nq: int, ng: int, dim: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered features: (nq + ng) / 6 identities, Gaussian around their centres."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, max(2, (nq + ng) // 6), nq + ng)
    centers = rng.standard_normal((ids.max() + 1, dim))
    x = (centers[ids] + 0.7 * rng.standard_normal((nq + ng, dim))).astype(np.float32)
    return x[:nq], x[nq:], ids


def _dists(q: np.ndarray, g: np.ndarray, metric: str = "euclidean") -> tuple[np.ndarray, ...]:
    return tuple(pairwise_distance(a, b, metric=metric) for a, b in ((q, g), (q, q), (g, g)))


@pytest.mark.parametrize(
    ("nq", "ng", "k1", "k2", "lam"),
    [
        (12, 60, 20, 6, 0.3),  # the standard parameters
        (7, 40, 5, 1, 0.0),  # no query expansion, Jaccard only
        (10, 35, 3, 2, 1.0),  # original distance only
        (5, 20, 30, 40, 0.5),  # neighbourhoods larger than the data
        (9, 50, 7, 3, 0.6),  # odd k1: k1/2 rounds half to even like numpy
    ],
)
def test_matches_straightforward_reference(nq: int, ng: int, k1: int, k2: int, lam: float) -> None:
    q, g = _problem(nq, ng, seed=nq + ng)
    q_g, q_q, g_g = _dists(q, g)
    expected = straightforward_rerank(q_g, q_q, g_g, k1, k2, lam)
    got = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    assert got.shape == (nq, ng)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_asymmetric_inputs_follow_the_column_normalisation() -> None:
    q, g = _problem(8, 45, seed=5)
    q_g, q_q, g_g = _dists(q, g)
    rng = np.random.default_rng(1)
    q_q = q_q + 0.05 * rng.random(q_q.shape, dtype=np.float32)  # no longer symmetric
    g_g = g_g + 0.05 * rng.random(g_g.shape, dtype=np.float32)
    expected = straightforward_rerank(q_g, q_q, g_g, 6, 3, 0.3)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, 6, 3, 0.3), expected, atol=1e-5)


def test_negative_distances_are_squared_and_inputs_left_untouched() -> None:
    q, g = _problem(8, 50, seed=4)
    q_g, q_q, g_g = _dists(q, g, "cosine")
    rng = np.random.default_rng(2)
    flip = rng.random(g_g.shape) < 0.2
    g_g = np.where(flip, -g_g, g_g)  # the square (the reference's) forgets the sign
    copies = [a.copy() for a in (q_g, q_q, g_g)]
    expected = straightforward_rerank(q_g, q_q, g_g, 6, 3, 0.3)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, 6, 3, 0.3), expected, atol=1e-5)
    for before, after in zip(copies, (q_g, q_q, g_g), strict=True):
        np.testing.assert_array_equal(before, after)


def test_float64_and_torch_inputs() -> None:
    q, g = _problem(6, 30, seed=2)
    q_g, q_q, g_g = (d.astype(np.float64) for d in _dists(q, g))
    expected = straightforward_rerank(q_g, q_q, g_g, 5, 2, 0.3)
    got = re_ranking(torch.from_numpy(q_g), q_q, torch.from_numpy(g_g), 5, 2, 0.3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_feature_variant_equals_exact(metric: str) -> None:
    q, g = _problem(40, 260, dim=12, seed=7)
    exact = re_ranking(*_dists(q, g, metric))
    streamed = re_ranking_from_features(torch.from_numpy(q), g, metric=metric)
    np.testing.assert_allclose(streamed, exact, atol=1e-5)
    blocks = list(iter_re_ranked(q, g, metric=metric))
    assert blocks[0][0] == 0
    np.testing.assert_allclose(np.concatenate([b for _, b in blocks]), exact, atol=1e-5)


def test_rerank_metrics_equal_between_exact_and_streamed() -> None:
    q, g = _problem(50, 300, dim=10, seed=11)
    rng = np.random.default_rng(0)
    q_pids, g_pids = rng.integers(0, 20, 50), rng.integers(0, 20, 300)
    q_cams, g_cams = rng.integers(0, 3, 50), rng.integers(0, 3, 300)
    exact = evaluate_rank(re_ranking(*_dists(q, g, "cosine")), q_pids, g_pids, q_cams, g_cams)
    streamed = evaluate_from_features(
        q,
        g,
        q_pids,
        g_pids,
        q_cams,
        g_cams,
        metric="cosine",
        rerank=True,
        rerank_options={"k1": 20, "k2": 6, "lambda_value": 0.3},
    )
    np.testing.assert_allclose(streamed.cmc, exact.cmc)
    np.testing.assert_allclose(streamed.all_AP, exact.all_AP, atol=1e-9)
    np.testing.assert_allclose(streamed.all_INP, exact.all_INP, atol=1e-9)


def test_rerank_changes_the_ranking_for_the_better_on_clustered_data() -> None:
    q, g, ids = _problem_with_ids(60, 400, dim=6, seed=3)
    q_pids, g_pids = ids[:60], ids[60:]
    cams = (np.zeros(60, int), np.ones(400, int))
    plain = evaluate_rank(pairwise_distance(q, g, metric="euclidean"), q_pids, g_pids, *cams)
    reranked = evaluate_rank(re_ranking(*_dists(q, g)), q_pids, g_pids, *cams)
    assert reranked.mAP > plain.mAP


@pytest.mark.parametrize("k", [3, 21])
def test_pass1_neighbours_are_the_stable_argsort_of_original_dist(k: int) -> None:
    rng = np.random.default_rng(0)
    nq, ng = 200, 1200
    q_g = rng.random((nq, ng), dtype=np.float32)
    q_q = rng.random((nq, nq), dtype=np.float32)  # not symmetric: the column rule matters
    g_g = rng.random((ng, ng), dtype=np.float32)
    g_g[:, ::5] = np.round(g_g[:, ::5] * 8) / 8  # many exact ties
    q_g[::3] = np.round(q_g[::3] * 4) / 4
    # values 1 ulp apart that squaring / dividing can round together
    g_g[:40, 7] = np.float32(0.3) + np.arange(40, dtype=np.float32) * np.float32(2**-25)
    # a column whose smallest values all sit in a few rows of one residue class: few of them
    # are group minima, so the threshold has to reach past them
    g_g[:, 11] = 0.9
    q_g[:, 11] = 0.9
    q_g[::7, 11] = 0.01 * rng.random(len(q_g[::7]), dtype=np.float32)
    g_g[::7, 11] = 0.01 * rng.random(len(g_g[::7]), dtype=np.float32)
    m = np.square(np.block([[q_q, q_g], [q_g.T, g_g]])).astype(np.float32)
    original = (m / m.max(axis=0)).T
    expected = np.argsort(original, axis=1, kind="stable")[:, :k]
    ranks, colmax = neighbours(MatrixSource(q_g, q_q, g_g), k, 97)  # blocks of 97 columns
    np.testing.assert_array_equal(ranks, expected)
    np.testing.assert_array_equal(colmax, m.max(axis=0))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (((3, 4), (3, 3), (5, 5)), {}, r"g_g_dist must be \(4, 4\)"),
        (((3, 4), (4, 4), (4, 4)), {}, r"q_q_dist must be \(3, 3\)"),
        (((0, 4), (0, 0), (4, 4)), {}, "q_g_dist is empty"),
        (((3, 4), (3, 3), (4, 4)), {"k1": 0}, "k1 must be an integer >= 1"),
        (((3, 4), (3, 3), (4, 4)), {"k2": 1.5}, "k2 must be an integer >= 1"),
        (((3, 4), (3, 3), (4, 4)), {"lambda_value": 1.5}, r"lambda_value must be in \[0, 1\]"),
    ],
)
def test_bad_input(args: tuple, kwargs: dict, message: str) -> None:
    rng = np.random.default_rng(0)
    mats = [rng.random(shape) for shape in args]
    with pytest.raises(ValueError, match=message):
        re_ranking(*mats, **kwargs)


def test_nan_distance_is_reported() -> None:
    q, g = _problem(4, 10)
    q_g, q_q, g_g = _dists(q, g)
    g_g[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        re_ranking(q_g, q_q, g_g)


def test_inner_product_metric_is_refused() -> None:
    q, g = _problem(4, 10)
    with pytest.raises(ValueError, match="non-negative metric"):
        re_ranking_from_features(q, g, metric="inner_product")
