"""mAP cut at a rank (the official PMM evaluator's mAP@50) against a per-query reference loop."""

from __future__ import annotations

import numpy as np
import pytest

from reid_pipeline.data.records import Record
from reid_pipeline.evaluation import evaluate_protocol
from reid_pipeline.evaluation.rank import evaluate_from_features, evaluate_rank


def reference_ap_at(  # noqa: PLR0917 - the field's positional ids
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    cut: int,
) -> list[float]:
    """Per valid query: sum over the first ``cut`` kept ranks of precision x relevance, divided
    by the number of ALL relevant kept items (the official evaluator's definition)."""
    aps = []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        matches = (g_pids[order][keep] == q_pids[i]).astype(np.float64)
        if not matches.any():
            continue
        precision = matches.cumsum() / np.arange(1, len(matches) + 1)
        aps.append(float((precision * matches)[:cut].sum() / matches.sum()))
    return aps


def _data(seed: int, separated: bool) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    nq, ng, ids = 40, 400, 20
    q_pids, g_pids = rng.integers(0, ids, nq), rng.integers(0, ids, ng)
    q_cams, g_cams = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    d = rng.random((nq, ng)).astype(np.float32)
    if separated:  # matches mostly first: the kernel's sparse path
        d -= 0.9 * (q_pids[:, None] == g_pids[None, :])
    return d, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("separated", [False, True])
@pytest.mark.parametrize("cut", [1, 5, 50, 1000])
def test_map_at_rank_equals_the_reference(separated: bool, cut: int) -> None:
    d, qp, gp, qc, gc = _data(cut, separated)
    result = evaluate_rank(d, qp, gp, qc, gc, map_max_rank=cut)
    expected = reference_ap_at(d, qp, gp, qc, gc, cut)
    np.testing.assert_allclose(result.all_AP, expected, rtol=1e-12, atol=1e-12)
    full = evaluate_rank(d, qp, gp, qc, gc)
    if cut >= d.shape[1]:  # nothing is cut: the standard mAP
        assert result.mAP == pytest.approx(full.mAP, abs=1e-12)
    elif not separated:  # matches deep in the list: the cut mAP is strictly lower
        assert result.mAP < full.mAP
    np.testing.assert_array_equal(result.cmc, full.cmc)  # CMC and mINP untouched
    assert result.mINP == full.mINP


def test_from_features_and_protocol_pass_the_cut() -> None:
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(30, 8)), rng.normal(size=(200, 8))
    qp, gp = rng.integers(0, 10, 30), rng.integers(0, 10, 200)
    qc, gc = np.zeros(30, dtype=int), np.ones(200, dtype=int)
    cut = evaluate_from_features(q, g, qp, gp, qc, gc, metric="euclidean", map_max_rank=50)
    d = np.sqrt(np.maximum((q**2).sum(1)[:, None] + (g**2).sum(1)[None] - 2 * q @ g.T, 0))
    expected = reference_ap_at(d, qp, gp, qc, gc, 50)
    assert cut.mAP == pytest.approx(float(np.mean(expected)), abs=1e-6)
    query = [Record(f"q{i}.jpg", int(p), 0, 0) for i, p in enumerate(qp)]
    gallery = [Record(f"g{i}.jpg", int(p), 1, 0) for i, p in enumerate(gp)]
    result = evaluate_protocol(
        "market1501", q, g, query, gallery, metric="euclidean", map_max_rank=50
    )
    assert result["single_query"].mean["mAP"] == pytest.approx(cut.mAP, abs=1e-9)
    assert result.info["map_max_rank"] == 50
    plain = evaluate_protocol("market1501", q, g, query, gallery, metric="euclidean")
    assert "map_max_rank" not in plain.info


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "50"])
def test_bad_cut_is_refused(bad: object) -> None:
    d, qp, gp, qc, gc = _data(0, False)
    with pytest.raises(ValueError, match="map_max_rank must be None or an integer >= 1"):
        evaluate_rank(d, qp, gp, qc, gc, map_max_rank=bad)  # type: ignore[arg-type]
