"""evaluate_rank / evaluate_from_features: hand-computed cases, property tests against the plain
per-query loop, skipped-query reporting and bad input."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reid_pipeline.evaluation import (
    RankResult,
    evaluate_from_features,
    evaluate_rank,
    kernels,
    pairwise_distance,
)

from .reference import reference_rank

# ---------------------------------------------------------------- a case worked out by hand
# gallery:            g0     g1     g2     g3     g4
G_PIDS = np.array([1, 2, 1, 3, 1])
G_CAMS = np.array([0, 1, 1, 0, 0])
Q_PIDS = np.array([1, 2, 1, 4, 3])
Q_CAMS = np.array([0, 0, 1, 0, 0])
DIST = np.array(
    [
        [0.5, 0.1, 0.3, 0.2, 0.4],  # q0: g0,g4 removed (pid 1, cam 0); order g1 g3 g2 -> hit at 3
        [0.2, 0.9, 0.1, 0.3, 0.4],  # q1: nothing removed; g2 g0 g3 g4 g1 -> hit at 5
        [0.1, 0.2, 0.3, 0.4, 0.5],  # q2: g2 removed; g0 g1 g3 g4 -> hits at 1 and 4
        [0.1, 0.2, 0.3, 0.4, 0.5],  # q3: pid 4 is not in the gallery
        [0.1, 0.2, 0.3, 0.4, 0.5],  # q4: pid 3 only in its own camera -> removed
    ],
    dtype=np.float32,
)


def test_hand_computed_case() -> None:
    r = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5)
    assert isinstance(r, RankResult)
    np.testing.assert_allclose(r.cmc, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(r.all_AP, [1 / 3, 1 / 5, (1 / 1 + 2 / 4) / 2])
    np.testing.assert_allclose(r.all_INP, [1 / 3, 1 / 5, 2 / 4])
    assert r.mAP == pytest.approx((1 / 3 + 1 / 5 + 0.75) / 3)
    assert r.mINP == pytest.approx((1 / 3 + 1 / 5 + 0.5) / 3)
    np.testing.assert_array_equal(r.valid_indices, [0, 1, 2])
    np.testing.assert_array_equal(r.first_match_rank, [3, 5, 1])
    assert (r.num_valid, r.num_skipped) == (3, 2)
    np.testing.assert_array_equal(r.skipped["identity_not_in_gallery"], [3])
    np.testing.assert_array_equal(r.skipped["all_matches_excluded"], [4])
    assert r.summary(ranks=(1, 5)) == pytest.approx(
        {"R1": 1 / 3, "R5": 1.0, "mAP": r.mAP, "mINP": r.mINP}
    )
    d = r.to_dict()
    assert d["skipped"] == {"identity_not_in_gallery": 1, "all_matches_excluded": 1}
    assert len(d["cmc"]) == 5


def test_ties_are_ranked_by_gallery_index() -> None:
    # all three at the same distance: stable order g0 (pid 5), g1 (pid 1), g2 (pid 1)
    r = evaluate_rank(np.full((1, 3), 0.2), [1], [5, 1, 1], [9], [0, 0, 0], max_rank=3)
    np.testing.assert_allclose(r.cmc, [0, 1, 1])
    assert r.all_AP[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert r.all_INP[0] == pytest.approx(2 / 3)
    # swap the identities: now the match comes first among the tied items
    r = evaluate_rank(np.full((1, 3), 0.2), [1], [1, 5, 1], [9], [0, 0, 0], max_rank=3)
    assert r.all_AP[0] == pytest.approx((1 + 2 / 3) / 2)


def test_negative_zero_ties_with_zero() -> None:
    r = evaluate_rank(np.array([[0.0, -0.0]], np.float32), [1], [2, 1], [0], [1, 1], max_rank=2)
    np.testing.assert_allclose(r.cmc, [0, 1])  # equal distances: g0 first by index


def test_unique_id_cmc_keeps_best_image_per_identity() -> None:
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    args = ([1], [2, 2, 3, 1], [0], [1, 1, 1, 1])
    standard = evaluate_rank(dist, *args, max_rank=4)
    unique = evaluate_rank(dist, *args, max_rank=4, unique_id_cmc=True)
    np.testing.assert_allclose(standard.cmc, [0, 0, 0, 1])
    np.testing.assert_allclose(unique.cmc, [0, 0, 1, 1])  # list [2, 3, 1]
    assert unique.all_AP[0] == standard.all_AP[0] == pytest.approx(1 / 4)  # AP on the full list


def test_excluded_cameras_remove_every_identity() -> None:
    # query camid 2 never matches gallery camid 1 (SYSU-MM01's cam3 / cam2 rule)
    dist = np.array([[0.1, 0.3, 0.2], [0.1, 0.3, 0.2]])
    args = ([1, 1], [1, 1, 2], [2, 5], [1, 0, 0])
    r = evaluate_rank(dist, *args, max_rank=3, excluded_cameras={2: [1]})
    np.testing.assert_array_equal(r.first_match_rank, [2, 1])
    np.testing.assert_allclose(r.all_AP, [1 / 2, (1 + 2 / 3) / 2])


def test_no_exclusion_when_disabled() -> None:
    r = evaluate_rank(DIST[:1], Q_PIDS[:1], G_PIDS, Q_CAMS[:1], G_CAMS, 5, remove_same_camera=False)
    # order g1 g3 g2 g4 g0 -> pid-1 hits at ranks 3, 4, 5
    assert r.all_AP[0] == pytest.approx((1 / 3 + 2 / 4 + 3 / 5) / 3)


def test_max_rank_beyond_gallery_saturates() -> None:
    r = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=8)
    assert len(r.cmc) == 8
    np.testing.assert_allclose(r.cmc[4:], 1.0)


def test_all_skipped_raises_with_the_usual_causes() -> None:
    with pytest.raises(ValueError, match=r"none of the 2 queries.*relabelled") as info:
        evaluate_rank(np.ones((2, 2)), [7, 8], [1, 2], [0, 0], [1, 1])
    assert "2 query identities do not occur" in str(info.value)


# ---------------------------------------------------------------- property tests


@st.composite
def ranking_problems(draw: st.DrawFn) -> tuple:
    nq = draw(st.integers(1, 7))
    ng = draw(st.integers(1, 25))
    levels = draw(st.integers(1, 6))  # few distinct values -> many ties
    dist = (
        np.array(
            draw(st.lists(st.integers(0, levels), min_size=nq * ng, max_size=nq * ng)), np.float32
        ).reshape(nq, ng)
        / levels
    )
    ids = st.integers(0, 4)
    q_pids = np.array(draw(st.lists(ids, min_size=nq, max_size=nq)))
    g_pids = np.array(draw(st.lists(ids, min_size=ng, max_size=ng)))
    cams = st.integers(0, 2)
    q_cams = np.array(draw(st.lists(cams, min_size=nq, max_size=nq)))
    g_cams = np.array(draw(st.lists(cams, min_size=ng, max_size=ng)))
    return dist, q_pids, g_pids, q_cams, g_cams


OPTIONS = st.fixed_dictionaries(
    {
        "remove_same_camera": st.booleans(),
        "unique_id_cmc": st.booleans(),
        "excluded_cameras": st.sampled_from([None, {2: {1}}, {0: {1, 2}}]),
        "chunk_size": st.sampled_from([None, 1, 3]),
        "float64": st.booleans(),
        "path": st.sampled_from([None, "sparse", "dense"]),  # the kernel's two ways, or auto
    }
)

_DENSE_FRACTION = {None: kernels.DENSE_FRACTION, "sparse": 2.0, "dense": -1.0}


@settings(max_examples=300, deadline=None)
@given(problem=ranking_problems(), options=OPTIONS, max_rank=st.integers(1, 30))
def test_matches_reference_loop(problem: tuple, options: dict, max_rank: int) -> None:
    dist, q_pids, g_pids, q_cams, g_cams = problem
    options = dict(options)
    if options.pop("float64"):
        dist = dist.astype(np.float64)
    with mock.patch.object(kernels, "DENSE_FRACTION", _DENSE_FRACTION[options.pop("path")]):
        _check_against_reference((dist, q_pids, g_pids, q_cams, g_cams), max_rank, options)


def _check_against_reference(problem: tuple, max_rank: int, options: dict) -> None:
    dist, q_pids, g_pids, q_cams, g_cams = problem
    ref_opts = {k: options[k] for k in ("remove_same_camera", "unique_id_cmc", "excluded_cameras")}
    cmc, aps, inps, valid = reference_rank(
        dist, q_pids, g_pids, q_cams, g_cams, max_rank, **ref_opts
    )
    if not valid:
        with pytest.raises(ValueError, match="none of the"):
            evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank, **options)
        return
    r = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank, **options)
    np.testing.assert_array_equal(r.valid_indices, valid)
    np.testing.assert_allclose(r.cmc, cmc, atol=1e-12)
    np.testing.assert_allclose(r.all_AP, aps, atol=1e-12)
    np.testing.assert_allclose(r.all_INP, inps, atol=1e-12)
    assert r.num_skipped == len(q_pids) - len(valid)
    skipped = np.sort(np.concatenate([*r.skipped.values(), np.array([], int)]))
    np.testing.assert_array_equal(skipped, np.setdiff1d(np.arange(len(q_pids)), valid))


def test_random_market_like_problem_matches_reference() -> None:
    rng = np.random.default_rng(3)
    nq, ng = 60, 700
    q_pids, g_pids = rng.integers(0, 40, nq), rng.integers(0, 40, ng)
    q_cams, g_cams = rng.integers(0, 6, nq), rng.integers(0, 6, ng)
    dist = rng.random((nq, ng), dtype=np.float32)
    dist[q_pids[:, None] == g_pids[None, :]] *= 0.3  # a model that is right most of the time
    for unique in (False, True):
        cmc, aps, inps, valid = reference_rank(
            dist, q_pids, g_pids, q_cams, g_cams, 50, unique_id_cmc=unique
        )
        for fraction in (2.0, -1.0):  # sparse path, dense path
            with mock.patch.object(kernels, "DENSE_FRACTION", fraction):
                r = evaluate_rank(
                    torch.from_numpy(dist),
                    q_pids,
                    g_pids,
                    q_cams,
                    g_cams,
                    50,
                    chunk_size=7,
                    unique_id_cmc=unique,
                )
            np.testing.assert_array_equal(r.valid_indices, valid)
            np.testing.assert_allclose(r.cmc, cmc)
            np.testing.assert_allclose(r.all_AP, aps)
            np.testing.assert_allclose(r.all_INP, inps)


# ---------------------------------------------------------------- streaming from features


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "inner_product"])
def test_streaming_features_equals_full_matrix(metric: str) -> None:
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((45, 16)), rng.standard_normal((230, 16))
    q_pids, g_pids = rng.integers(0, 20, 45), rng.integers(0, 20, 230)
    q_cams, g_cams = rng.integers(0, 3, 45), rng.integers(0, 3, 230)
    q32, g32 = q.astype(np.float32), g.astype(np.float32)
    full = evaluate_rank(pairwise_distance(q32, g32, metric=metric), q_pids, g_pids, q_cams, g_cams)
    streamed = evaluate_from_features(
        torch.from_numpy(q32), g32, q_pids, g_pids, q_cams, g_cams, metric=metric, chunk_size=8
    )
    np.testing.assert_allclose(streamed.cmc, full.cmc)
    np.testing.assert_allclose(streamed.all_AP, full.all_AP)
    np.testing.assert_allclose(streamed.all_INP, full.all_INP)
    # and the distances are the textbook ones
    d = pairwise_distance(q, g, metric=metric)
    if metric == "cosine":
        qn, gn = (
            q / np.linalg.norm(q, axis=1, keepdims=True),
            g / np.linalg.norm(g, axis=1, keepdims=True),
        )
        expected = 1 - qn @ gn.T
    elif metric == "euclidean":
        expected = np.linalg.norm(q[:, None] - g[None], axis=2)
    else:
        expected = -q @ g.T
    assert d.dtype == np.float64
    np.testing.assert_allclose(d, expected, atol=1e-9)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distmat": np.ones(3)}, "distmat must be a 2-D"),
        ({"distmat": np.ones((0, 5))}, "query set is empty"),
        ({"distmat": np.ones((5, 0))}, "gallery is empty"),
        ({"q_pids": np.ones(4, int)}, "q_pids has 4 entries but distmat"),
        ({"g_pids": np.ones(6, int)}, "g_pids has 6 entries but distmat"),
        ({"q_camids": np.ones(2, int)}, "q_camids has 2 entries"),
        ({"g_camids": np.ones((5, 1), int)}, "g_camids must be 1-D"),
        ({"q_pids": np.full(5, 0.5)}, "q_pids must hold integer ids"),
        ({"max_rank": 0}, "max_rank must be an integer >= 1"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer"),
        ({"distmat": np.where(np.eye(5, dtype=bool), np.nan, 1.0)}, "NaN or infinite.*row 0"),
        ({"distmat": np.where(np.eye(5, dtype=bool)[::-1], np.inf, 1.0)}, "NaN or infinite"),
        ({"distmat": np.full((5, 5), "a")}, "distmat must hold real numbers"),
    ],
)
def test_bad_input_raises_one_clear_error(kwargs: dict, message: str) -> None:
    args = {
        "distmat": np.ones((5, 5)),
        "q_pids": np.arange(5),
        "g_pids": np.arange(5),
        "q_camids": np.zeros(5, int),
        "g_camids": np.ones(5, int),
        "max_rank": 5,
    }
    chunk = kwargs.pop("chunk_size", None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        evaluate_rank(**args, chunk_size=chunk)


@pytest.mark.parametrize(
    ("q", "g", "message"),
    [
        (np.ones((3, 4)), np.ones((5, 3)), "same feature dimension"),
        (np.ones((0, 4)), np.ones((5, 4)), "q_feats is empty"),
        (np.ones((3, 4)), np.ones((0, 4)), "g_feats is empty"),
        (np.ones(4), np.ones((5, 4)), "q_feats must be a 2-D"),
        (np.full((3, 4), np.nan), np.ones((5, 4)), "q_feats contains NaN"),
    ],
)
def test_bad_features_raise(q: np.ndarray, g: np.ndarray, message: str) -> None:
    nq, ng = (len(q), len(g))
    with pytest.raises(ValueError, match=message):
        evaluate_from_features(q, g, np.arange(nq), np.arange(ng), np.zeros(nq), np.ones(ng))


def test_unknown_metric_is_named() -> None:
    with pytest.raises(ValueError, match="metric must be one of"):
        evaluate_from_features(
            np.ones((2, 2)), np.ones((2, 2)), [0, 1], [0, 1], [0, 0], [1, 1], metric="manhattan"
        )


def test_excluded_cameras_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="excluded_cameras must map a query camid"):
        evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, 5, excluded_cameras=[(2, 1)])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_features_give_the_cpu_numbers() -> None:
    rng = np.random.default_rng(5)
    q, g = rng.standard_normal((70, 32), np.float32), rng.standard_normal((400, 32), np.float32)
    ids = (rng.integers(0, 30, 70), rng.integers(0, 30, 400), np.zeros(70), np.ones(400))
    for rerank in (False, True):
        cpu = evaluate_from_features(q, g, *ids, rerank=rerank)
        gpu = evaluate_from_features(torch.from_numpy(q).cuda(), torch.from_numpy(g).cuda(), *ids,
                                     rerank=rerank)  # fmt: skip
        np.testing.assert_allclose(gpu.all_AP, cpu.all_AP, atol=1e-5)
        np.testing.assert_allclose(gpu.cmc, cpu.cmc, atol=1e-2)
