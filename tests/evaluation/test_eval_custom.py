"""The manifest / folders protocol (your own images), the protocol registry and distance_rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_pipeline.data.records import Record
from reid_pipeline.errors import DataError
from reid_pipeline.evaluation import (
    ProtocolResult,
    distance_rows,
    evaluate_protocol,
    evaluate_rank,
    pairwise_distance,
    protocol_names,
    register_protocol,
)
from reid_pipeline.evaluation.protocols import core


def _own_images(seed: int = 0, modalities: tuple[int, ...] = (0,)) -> tuple:
    """Records of 6 identities (pid 0 included: a real person here), 3 cameras per modality."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((7, 8))
    query, gallery = [], []
    for pid in range(6):
        for m in modalities:
            for cam in range(3):
                query.append(Record(f"/own/q/{pid}_{m}_{cam}.jpg", pid, cam + 3 * m, m))
                for k in range(2):
                    gallery.append(Record(f"/own/g/{pid}_{m}_{cam}_{k}.jpg", pid, cam + 3 * m, m))
    # pid 6 has a query but no gallery image: skipped, counted
    query.append(Record("/own/q/6.jpg", 6, 0, modalities[0]))
    qf = np.array([centers[r.pid] + 0.9 * rng.standard_normal(8) for r in query], np.float32)
    gf = np.array([centers[r.pid] + 0.9 * rng.standard_normal(8) for r in gallery], np.float32)
    return query, gallery, qf, gf


def _ids(records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r.pid for r in records]), np.array([r.camid for r in records])


@pytest.mark.parametrize("dataset", ["manifest", "folders"])
def test_one_modality_is_the_market_rule_with_every_pid_a_real_identity(dataset: str) -> None:
    query, gallery, qf, gf = _own_images()
    result = evaluate_protocol(dataset, qf, gf, query, gallery, {"dataset": dataset})
    assert isinstance(result, ProtocolResult)
    assert result.dataset == dataset
    assert list(result.settings) == ["single_query"]
    assert result.info["mode"] == "single-modality"
    (q_pids, q_cams), (g_pids, g_cams) = _ids(query), _ids(gallery)
    by_hand = evaluate_rank(pairwise_distance(qf, gf), q_pids, g_pids, q_cams, g_cams)
    (trial,) = result["single_query"].trials
    assert trial["mAP"] == by_hand.mAP
    assert trial["mINP"] == by_hand.mINP
    np.testing.assert_array_equal(result["single_query"].cmc, by_hand.cmc)
    # every query of pids 0..5 has matches in its two other cameras: valid (pid 0 included);
    # the pid-6 query has none: skipped and counted
    assert trial["num_query"] == 19
    assert (trial["num_valid"], trial["num_skipped"]) == (18, 1)
    assert 0 in q_pids[result["single_query"].rank_results[0].valid_indices]


def test_one_modality_removes_same_pid_same_camera() -> None:
    query = [Record("/q/a.jpg", 1, 0, 0), Record("/q/b.jpg", 2, 1, 0)]
    gallery = [
        Record("/g/a.jpg", 1, 0, 0),
        Record("/g/b.jpg", 2, 0, 0),
        Record("/g/c.jpg", 3, 1, 0),
    ]
    qf = np.array([[1.0, 0.0], [0.0, 1.0]])
    gf = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    result = evaluate_protocol("manifest", qf, gf, query, gallery)
    (trial,) = result["single_query"].trials
    # query 0's only match shares its camera: removed, so the query is skipped
    assert (trial["num_valid"], trial["num_skipped"]) == (1, 1)
    assert trial["R1"] == 1.0


def test_both_modalities_rank_each_against_the_other_without_camera_removal() -> None:
    query, gallery, qf, gf = _own_images(1, modalities=(0, 1))
    # pid 7: one infrared query whose only visible match has the same camera id: still valid
    query.append(Record("/own/q/7.jpg", 7, 0, 1))
    gallery.append(Record("/own/g/7.jpg", 7, 0, 0))
    qf, gf = np.vstack([qf, np.full(8, 5.0)]), np.vstack([gf, np.full(8, 5.0)])
    result = evaluate_protocol("folders", torch.from_numpy(qf), gf, query, gallery)
    assert list(result.settings) == ["infrared_to_visible", "visible_to_infrared"]
    assert result.info["mode"] == "cross-modality"
    assert "not_evaluated" not in result.info
    (q_pids, q_cams), (g_pids, g_cams) = _ids(query), _ids(gallery)
    q_mod = np.array([r.modality for r in query])
    g_mod = np.array([r.modality for r in gallery])
    for name, (qm, gm) in {"infrared_to_visible": (1, 0), "visible_to_infrared": (0, 1)}.items():
        qi, gi = np.flatnonzero(q_mod == qm), np.flatnonzero(g_mod == gm)
        by_hand = evaluate_rank(
            pairwise_distance(qf[qi], gf[gi]),
            q_pids[qi],
            g_pids[gi],
            q_cams[qi],
            g_cams[gi],
            remove_same_camera=False,
        )
        (trial,) = result[name].trials
        assert (trial["num_query"], trial["num_gallery"]) == (len(qi), len(gi))
        assert trial["mAP"] == pytest.approx(by_hand.mAP, abs=1e-6)
        assert (trial["num_valid"], trial["num_skipped"]) == (by_hand.num_valid, 1 - qm)
        assert result[name].info["exclusion"] == "none"
    # every infrared query is valid, the pid-7 one included (its match shares its camera id)
    ir2vis = result["infrared_to_visible"].rank_results[0]
    assert ir2vis.num_valid == np.sum(q_mod == 1)
    assert ir2vis.first_match_rank[-1] == 1


def test_a_direction_without_records_is_named_not_silently_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    query, gallery, qf, gf = _own_images(2, modalities=(0, 1))
    q_ir = [i for i, r in enumerate(query) if r.modality == 1]
    g_vis = [i for i, r in enumerate(gallery) if r.modality == 0]
    q, g = [query[i] for i in q_ir], [gallery[i] for i in g_vis]
    with caplog.at_level("WARNING"):
        result = evaluate_protocol("manifest", qf[q_ir], gf[g_vis], q, g)
    # infrared queries and a visible gallery: both modalities occur, one direction is possible
    assert list(result.settings) == ["infrared_to_visible"]
    assert result.info["not_evaluated"] == {
        "visible_to_infrared": "no visible (modality 0) query records"
    }
    assert "visible_to_infrared not evaluated" in caplog.text
    with pytest.raises(DataError, match="cannot evaluate visible_to_infrared"):
        evaluate_protocol(
            "manifest", qf[q_ir], gf[g_vis], q, g, directions=("visible_to_infrared",)
        )


@pytest.mark.parametrize(
    ("modalities", "change", "error", "message"),
    [
        ((0,), {"directions": "infrared_to_visible"}, ValueError, "every manifest query"),
        ((0, 1), {"directions": ["ir_to_vis"]}, ValueError, "directions must be among"),
        ((0,), {"trials": 3}, ValueError, r"accepted: \['directions'\]"),
        ((0,), {"modality": 2}, DataError, r"query records have modality value\(s\) \[2\]"),
    ],
)
def test_custom_protocol_errors_name_the_problem(
    modalities: tuple[int, ...], change: dict, error: type, message: str
) -> None:
    query, gallery, qf, gf = _own_images(3, modalities=modalities)
    change = dict(change)
    if "modality" in change:
        query[0] = query[0]._replace(modality=change.pop("modality"))
    with pytest.raises(error, match=message):
        evaluate_protocol("manifest", qf, gf, query, gallery, **change)


def test_every_loader_format_has_a_protocol() -> None:
    assert protocol_names() == [
        "cuhk03",
        "dukemtmc",
        "folders",
        "llcm",
        "manifest",
        "market1501",
        "msmt17",
        "regdb",
        "sysu_mm01",
    ]


def test_a_registered_protocol_is_dispatched_with_its_own_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core, "_PROTOCOLS", dict(core._PROTOCOLS))
    calls = []

    def evaluate_toy(q_feats, g_feats, query, gallery, *, info, metric, rerank, rerank_options,
                     max_rank, label, scale=1):  # fmt: skip
        calls.append((info, metric, label, scale))
        return ProtocolResult(label, {}, {})

    register_protocol("toy", evaluate_toy, label="toy-data")
    query, gallery, qf, gf = _own_images()
    result = evaluate_protocol("toy", qf, gf, query, gallery, {"k": 1}, metric="euclidean", scale=2)
    assert result.dataset == "toy-data"
    assert calls == [({"k": 1}, "euclidean", "toy-data", 2)]
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['label'\].*accepted: \['scale'\]"):
        evaluate_protocol("toy", qf, gf, query, gallery, label="other")
    with pytest.raises(ValueError, match="already registered"):
        register_protocol("manifest", evaluate_toy)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "inner_product"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_distance_rows_are_the_protocols_distances_of_those_queries(
    metric: str, backend: str
) -> None:
    rng = np.random.default_rng(4)
    qf = rng.standard_normal((30, 16)).astype(np.float32) * 3
    gf = rng.standard_normal((50, 16)).astype(np.float32)
    rows = [29, 0, 7, 7]
    full = pairwise_distance(qf, gf, metric=metric)
    q_in = torch.from_numpy(qf) if backend == "torch" else qf
    d = distance_rows(q_in, gf, rows, metric=metric)
    assert d.shape == (4, 50)
    assert d.dtype == np.float32
    np.testing.assert_allclose(d, full[rows], rtol=1e-5, atol=1e-5)
    if metric == "cosine":  # what the train node computed by hand
        qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
        np.testing.assert_allclose(d, 1 - qn[rows] @ gn.T, atol=1e-5)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "rows is empty"),
        ([0, 30], "rows holds 30, but q_feats has 30 rows"),
        ([-1], "rows holds -1"),
        ([0.0, 1.0], "query indices"),
        ([[0, 1]], "query indices"),
    ],
)
def test_distance_rows_refuses_bad_rows(rows: list, message: str) -> None:
    qf, gf = np.ones((30, 4), np.float32), np.ones((5, 4), np.float32)
    with pytest.raises(ValueError, match=message):
        distance_rows(qf, gf, np.array(rows) if rows else rows)
