"""Protocols other than SYSU-MM01: single-modality, RegDB, LLCM; the shared result type and the
dispatcher's errors."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

from reid_pipeline.data.records import Record, records_to_frame
from reid_pipeline.evaluation import (
    ProtocolResult,
    evaluate_from_features,
    evaluate_protocol,
    evaluate_rank,
    pairwise_distance,
)
from reid_pipeline.evaluation.protocols import record_arrays
from reid_pipeline.evaluation.protocols.llcm import sample_one_per_camera


def _market_like(seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((12, 8))
    query, gallery, qf, gf = [], [], [], []
    for i in range(40):
        pid, cam = int(rng.integers(1, 12)), int(rng.integers(0, 6))
        query.append(Record(f"/m/query/{pid:04d}_c{cam + 1}_{i}.jpg", pid, cam, 0))
        qf.append(centers[pid] + 0.8 * rng.standard_normal(8))
    for i in range(150):
        pid, cam = int(rng.integers(0, 12)), int(rng.integers(0, 6))
        gallery.append(Record(f"/m/gallery/{pid:04d}_c{cam + 1}_{i}.jpg", pid, cam, 0))
        gf.append(centers[pid] + 0.8 * rng.standard_normal(8))
    return query, gallery, np.array(qf, np.float32), np.array(gf, np.float32)


def test_single_modality_is_one_standard_ranking() -> None:
    query, gallery, qf, gf = _market_like()
    result = evaluate_protocol(
        "market1501", torch.from_numpy(qf), gf, query, records_to_frame(gallery)
    )
    assert isinstance(result, ProtocolResult)
    (name,) = result.settings
    direct = evaluate_from_features(
        qf,
        gf,
        [r.pid for r in query],
        [r.pid for r in gallery],
        [r.camid for r in query],
        [r.camid for r in gallery],
    )
    setting = result[name]
    assert setting.mean["mAP"] == pytest.approx(direct.mAP)
    assert setting.mean["R1"] == pytest.approx(direct.cmc[0])
    assert setting.std["mAP"] == 0.0
    np.testing.assert_allclose(setting.cmc, direct.cmc)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["settings"][name]["mean"]["mINP"] == pytest.approx(direct.mINP)
    assert payload["info"]["metric"] == "cosine"
    assert result.metrics()[f"{name}/R5"] == pytest.approx(direct.cmc[4])
    assert "mAP" in result.table()


def test_rerank_through_the_dispatcher_matches_the_exact_function() -> None:
    query, gallery, qf, gf = _market_like(1)
    result = evaluate_protocol(
        "dukemtmc",
        qf,
        gf,
        query,
        gallery,
        metric="euclidean",
        rerank=True,
        rerank_options={"k1": 10, "k2": 3},
    )
    from reid_pipeline.evaluation import re_ranking

    d = [pairwise_distance(a, b, metric="euclidean") for a, b in ((qf, gf), (qf, qf), (gf, gf))]
    exact = evaluate_rank(
        re_ranking(*d, k1=10, k2=3),
        [r.pid for r in query],
        [r.pid for r in gallery],
        [r.camid for r in query],
        [r.camid for r in gallery],
    )
    assert result["single_query"].mean["mAP"] == pytest.approx(exact.mAP)


def _regdb(trial: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(5), 3)
    thermal = [Record(f"/r/Thermal/{p}/t_{i}.bmp", int(p), 1, 1) for i, p in enumerate(pids)]
    visible = [Record(f"/r/Visible/{p}/v_{i}.bmp", int(p), 0, 0) for i, p in enumerate(pids)]
    centers = rng.standard_normal((5, 4))
    tf = centers[pids] + 0.9 * rng.standard_normal((15, 4))
    vf = centers[pids] + 0.9 * rng.standard_normal((15, 4))
    return thermal, visible, tf, vf, {"trial": trial}


def test_regdb_both_directions_and_trials_combined() -> None:
    results = []
    for trial in (1, 2):
        thermal, visible, tf, vf, info = _regdb(trial, seed=trial)
        r = evaluate_protocol("regdb", tf, vf, thermal, visible, info)
        assert list(r.settings) == ["thermal_to_visible", "visible_to_thermal"]
        pids = [x.pid for x in thermal]
        t2v = evaluate_rank(pairwise_distance(tf, vf), pids, pids, np.ones(15), np.zeros(15))
        v2t = evaluate_rank(pairwise_distance(vf, tf), pids, pids, np.zeros(15), np.ones(15))
        assert r["thermal_to_visible"].mean["mAP"] == pytest.approx(t2v.mAP)
        assert r["visible_to_thermal"].mean["mAP"] == pytest.approx(v2t.mAP)
        assert r["thermal_to_visible"].trials[0]["trial"] == trial
        results.append((r, t2v))
    combined = ProtocolResult.combine([r for r, _ in results])
    setting = combined["thermal_to_visible"]
    assert [t["trial"] for t in setting.trials] == [1, 2]
    maps = [t2v.mAP for _, t2v in results]
    assert setting.mean["mAP"] == pytest.approx(np.mean(maps))
    assert setting.std["mAP"] == pytest.approx(np.std(maps))
    np.testing.assert_allclose(setting.cmc, np.mean([t2v.cmc for _, t2v in results], axis=0))


def test_regdb_refuses_swapped_modalities() -> None:
    thermal, visible, tf, vf, info = _regdb(1, 0)
    with pytest.raises(ValueError, match="RegDB query records must be thermal"):
        evaluate_protocol("regdb", vf, tf, visible, thermal, info)


def _llcm(seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    nir, vis = [], []
    for pid in (3, 7, 9, 12):
        for cam in (1, 2, 4, 5):
            for k in range(int(rng.integers(1, 4))):
                nir.append(
                    Record(
                        f"/l/nir/{pid:04d}/{pid:04d}_c{cam:02d}_s1_f{k}_nir.jpg", pid, cam - 1, 1
                    )
                )
        for cam in (1, 2, 3, 5):
            for k in range(int(rng.integers(1, 4))):
                vis.append(
                    Record(
                        f"/l/vis/{pid:04d}/{pid:04d}_c{cam:02d}_s1_f{k}_vis.jpg", pid, cam - 1, 0
                    )
                )
    centers = rng.standard_normal((13, 6))
    nf = np.array([centers[r.pid] + rng.standard_normal(6) for r in nir])
    vf = np.array([centers[r.pid] + rng.standard_normal(6) for r in vis])
    return nir, vis, nf, vf


def test_llcm_sampler_is_the_released_scripts() -> None:
    _, vis, _, _ = _llcm()
    arrays = record_arrays(vis, name="gallery")
    picked = sample_one_per_camera(arrays, trial=5, test_ids=[12, 3, 9, 7])
    random.seed(5)  # process_gallery_llcm: ids ascending, camera folders ascending
    expected = []
    for pid in (3, 7, 9, 12):
        for cam in range(1, 10):
            files = sorted(r.path for r in vis if r.pid == pid and r.camid == cam - 1)
            if files:
                expected.append(random.choice(files))
    assert [arrays.paths[i] for i in picked] == expected


@pytest.mark.parametrize("variant", ["standard", "official"])
def test_llcm_directions(variant: str) -> None:
    nir, vis, nf, vf = _llcm()
    result = evaluate_protocol(
        "llcm", nf, vf, nir, vis, {"test_ids": [3, 7, 9, 12]}, variant=variant, trials=3
    )
    ir2vis, vis2ir = result["ir_to_vis"], result["vis_to_ir"]
    assert len(ir2vis.trials) == len(vis2ir.trials) == 3
    n_vis_groups = len({(r.pid, r.camid) for r in vis})
    n_nir_groups = len({(r.pid, r.camid) for r in nir})
    assert {t["num_query"] for t in ir2vis.trials} == {len(nir)}
    assert {t["num_gallery"] for t in ir2vis.trials} == {n_vis_groups}
    if variant == "standard":  # every VIS image ranked against one NIR image per (id, camera)
        assert {(t["num_query"], t["num_gallery"]) for t in vis2ir.trials} == {
            (len(vis), n_nir_groups)
        }
    else:  # the released script: sampled NIR rows ranked against every VIS image
        assert {(t["num_query"], t["num_gallery"]) for t in vis2ir.trials} == {
            (n_nir_groups, len(vis))
        }
    # trial 0 of ir_to_vis by hand: same sampler, same-pid-same-camera removal, unique-id CMC
    arrays = record_arrays(vis, name="gallery")
    g = sample_one_per_camera(arrays, trial=0, test_ids=[3, 7, 9, 12])
    by_hand = evaluate_rank(
        pairwise_distance(nf, vf[g]),
        [r.pid for r in nir],
        arrays.pids[g],
        [r.camid for r in nir],
        arrays.camids[g],
        unique_id_cmc=True,
    )
    assert ir2vis.trials[0]["mAP"] == pytest.approx(by_hand.mAP)
    assert ir2vis.trials[0]["R1"] == pytest.approx(by_hand.cmc[0])


@pytest.mark.parametrize(
    ("dataset", "change", "message"),
    [
        ("viper", {}, "unknown dataset 'viper'"),
        ("market1501", {"q_feats": 3}, "q_feats has 3 rows but query has 40 records"),
        ("market1501", {"trials": 3}, r"unknown option\(s\) \['trials'\]"),
        ("market1501", {"rerank_options": {"k1": 3}}, "rerank_options given but rerank is False"),
        ("market1501", {"metric": "l1"}, "metric must be one of"),
        ("market1501", {"query": []}, "query has no records"),
        ("market1501", {"max_rank": 0}, "max_rank must be an integer >= 1"),
        ("llcm", {"variant": "deen"}, "LLCM variant must be one of"),
    ],
)
def test_dispatcher_errors_name_the_problem(dataset: str, change: dict, message: str) -> None:
    query, gallery, qf, gf = _market_like()
    change = dict(change)
    if "q_feats" in change:
        qf = qf[: change.pop("q_feats")]
    query = change.pop("query", query)
    with pytest.raises(ValueError, match=message):
        evaluate_protocol(dataset, qf, gf, query, gallery, **change)


def test_records_from_a_manifest_frame_missing_a_column() -> None:
    query, gallery, qf, gf = _market_like()
    frame = records_to_frame(query).drop(columns=["camid"])
    with pytest.raises(ValueError, match="camid"):
        evaluate_protocol("market1501", qf, gf, frame, gallery)
    assert isinstance(frame, pd.DataFrame)
