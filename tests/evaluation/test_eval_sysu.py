"""SYSU-MM01: gallery sizes from the official rand_perm_cam.mat, both samplers, the cam3/cam2 rule
and the unique-identity CMC."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

from reid_pipeline.data.records import Record
from reid_pipeline.evaluation import evaluate_protocol, evaluate_sysu_mm01, load_sysu_permutation
from reid_pipeline.evaluation.protocols import record_arrays
from reid_pipeline.evaluation.protocols.sysu import sample_gallery
from tests.shared_data import SYSU_OFFICIAL as OFFICIAL
from tests.shared_data import SYSU_OFFICIAL_MISSING, SYSU_OFFICIAL_PRESENT

PERM = OFFICIAL / "rand_perm_cam.mat"
needs_official = pytest.mark.skipif(not SYSU_OFFICIAL_PRESENT, reason=SYSU_OFFICIAL_MISSING)


def _official_records(root: str = "/data/SYSU-MM01") -> tuple[list[Record], list[Record], list]:
    """Records laid out exactly like the release (cam<c>/<PPPP>/<NNNN>.jpg, numbered from 0001),
    with each (id, camera) image count taken from the official permutation file."""
    perm = load_sysu_permutation(PERM)
    test_ids = [int(i) for i in loadmat(str(OFFICIAL / "test_id.mat"))["id"].ravel()]
    query, gallery = [], []
    for cam in range(1, 7):
        cells = perm[cam - 1, 0]
        for pid in test_ids:
            n = cells[pid - 1, 0].shape[1] if pid - 1 < cells.shape[0] else 0
            for k in range(1, n + 1):
                rec = Record(
                    f"{root}/cam{cam}/{pid:04d}/{k:04d}.jpg", pid, cam - 1, int(cam in (3, 6))
                )
                (query if cam in (3, 6) else gallery).append(rec)
    return query, gallery, test_ids


@needs_official
def test_official_gallery_sizes_and_selection() -> None:
    query, gallery, test_ids = _official_records()
    assert len(test_ids) == 96
    assert len(query) == 3803  # every IR image of the test ids
    g = record_arrays(gallery, name="gallery")
    perm = load_sysu_permutation(PERM)
    sizes = {}
    for mode in ("all", "indoor"):
        for shots in (1, 10):
            per_trial = {
                len(
                    sample_gallery(
                        g,
                        mode=mode,
                        shots=shots,
                        trial=t,
                        sampler="official",
                        test_ids=test_ids,
                        perm=perm,
                    )
                )
                for t in range(10)
            }
            assert len(per_trial) == 1
            sizes[mode, shots] = per_trial.pop()
    assert sizes == {("all", 1): 301, ("all", 10): 3010, ("indoor", 1): 112, ("indoor", 10): 1120}
    # entry k of rand_perm_cam{cam}{id}(trial, :) is the file <k:04d>.jpg of that folder
    picked = sample_gallery(
        g, mode="indoor", shots=1, trial=3, sampler="official", test_ids=test_ids, perm=perm
    )
    k = int(perm[0, 0][6 - 1, 0][3, 0])  # cam1, id 6, MATLAB row 4 = trial 3
    assert f"/cam1/0006/{k:04d}.jpg" in {g.paths[i][-19:] for i in picked}
    assert len({g.paths[i] for i in picked}) == 112  # no image twice
    trials = [
        set(
            sample_gallery(
                g, mode="all", shots=1, trial=t, sampler="official", test_ids=test_ids, perm=perm
            ).tolist()
        )
        for t in (0, 1)
    ]
    assert trials[0] != trials[1]


@needs_official
def test_common_sampler_is_random_seed_trial_per_id_then_camera() -> None:
    _, gallery, test_ids = _official_records()
    g = record_arrays(gallery, name="gallery")
    picked = sample_gallery(g, mode="all", shots=1, trial=4, sampler="common", test_ids=test_ids)
    assert len(picked) == 301
    # the VI-ReID code: random.seed(trial); for id in sorted(ids): for cam in cams: choice(sorted)
    random.seed(4)
    expected = []
    for pid in sorted(test_ids):
        for cam in (1, 2, 4, 5):
            files = sorted(r.path for r in gallery if r.pid == pid and r.camid == cam - 1)
            if files:
                expected.append(random.choice(files))
    assert [g.paths[i] for i in picked] == expected
    with pytest.raises(ValueError, match="single-shot only"):
        sample_gallery(g, mode="all", shots=10, trial=0, sampler="common", test_ids=test_ids)


@needs_official
def test_official_sampler_refuses_incomplete_data() -> None:
    _, gallery, test_ids = _official_records()
    g = record_arrays(gallery[1:], name="gallery")  # drop cam1/0006/0001.jpg
    with pytest.raises(ValueError, match=r"lists 42 images for cam1/0006 but the gallery records"):
        sample_gallery(
            g,
            mode="all",
            shots=1,
            trial=0,
            sampler="official",
            test_ids=test_ids,
            perm=load_sysu_permutation(PERM),
        )


def test_missing_permutation_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"rand_perm_cam.mat not found.*evaluation kit"):
        load_sysu_permutation(tmp_path / "rand_perm_cam.mat")


def _tiny_sysu() -> tuple[list[Record], list[Record], np.ndarray, np.ndarray]:
    # 1-D features, euclidean: gallery id1/cam1 3.0, id1/cam2 0.0, id2/cam1 1.0, id2/cam2 2.0
    gallery = [
        Record("/s/cam1/0001/0001.jpg", 1, 0, 0),
        Record("/s/cam2/0001/0001.jpg", 1, 1, 0),
        Record("/s/cam1/0002/0001.jpg", 2, 0, 0),
        Record("/s/cam2/0002/0001.jpg", 2, 1, 0),
    ]
    query = [
        Record("/s/cam3/0001/0001.jpg", 1, 2, 1),  # at 0.0
        Record("/s/cam6/0001/0001.jpg", 1, 5, 1),  # at 0.0
        Record("/s/cam6/0001/0002.jpg", 1, 5, 1),  # at 1.6
    ]
    return query, gallery, np.array([[0.0], [0.0], [1.6]]), np.array([[3.0], [0.0], [1.0], [2.0]])


def test_cam3_queries_never_match_cam2_and_cmc_counts_identities_once() -> None:
    query, gallery, qf, gf = _tiny_sysu()
    result = evaluate_sysu_mm01(
        qf,
        gf,
        query,
        gallery,
        info={"test_ids": [1, 2]},
        metric="euclidean",
        modes=("indoor",),
        trials=1,
    )
    setting = result["indoor_search/single_shot"]
    (r,) = setting.rank_results
    # q0 (cam3): every cam2 image removed (both ids) -> id2/cam1, id1/cam1: match at rank 2;
    # q1 (cam6): nothing removed -> id1/cam2, id2/cam1, id2/cam2, id1/cam1: matches at 1 and 4;
    # q2 (cam6, 1.6): id2/cam2, id2/cam1, id1/cam1, id1/cam2: matches at 3 and 4, but the
    #   identity list is [2, 1] -> CMC rank 2
    np.testing.assert_array_equal(r.first_match_rank, [2, 1, 2])
    aps = [1 / 2, (1 + 2 / 4) / 2, (1 / 3 + 2 / 4) / 2]
    np.testing.assert_allclose(r.all_AP, aps)
    np.testing.assert_allclose(r.all_INP, [1 / 2, 2 / 4, 2 / 4])
    np.testing.assert_allclose(r.cmc[:3], [1 / 3, 1.0, 1.0])
    assert setting.mean["mAP"] == pytest.approx(np.mean(aps))
    assert setting.trials[0]["num_gallery"] == 4
    assert setting.info["sampler"] == "common"
    json.dumps(result.to_dict())


def test_dispatcher_runs_sysu_with_its_options_and_refuses_unknown_ones() -> None:
    query, gallery, qf, gf = _tiny_sysu()
    result = evaluate_protocol(
        "sysu_mm01", qf, gf, query, gallery, {"test_ids": [1, 2]}, metric="euclidean", trials=2
    )
    assert list(result.settings) == ["all_search/single_shot", "indoor_search/single_shot"]
    assert result["all_search/single_shot"].mean["R1"] == pytest.approx(1 / 3)
    assert len(result["all_search/single_shot"].trials) == 2
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['shot'\].*accepted"):
        evaluate_protocol("sysu_mm01", qf, gf, query, gallery, metric="euclidean", shot=1)
    with pytest.raises(ValueError, match="needs perm_path"):
        evaluate_protocol("sysu_mm01", qf, gf, query, gallery, sampler="official")


def test_wrong_modalities_are_refused() -> None:
    query, gallery, qf, gf = _tiny_sysu()
    with pytest.raises(ValueError, match="query records must be infrared"):
        evaluate_sysu_mm01(gf, qf, gallery, query)
