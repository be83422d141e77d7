"""LLCM evaluation: IR->VIS and VIS->IR, 10 trials of one sampled image per (id, camera).

Reference: Y. Zhang, H. Wang, "Diverse Embedding Expansion Network and Low-Light Cross-Modality
Benchmark for Visible-Infrared Person Re-identification", CVPR 2023, and the authors' released
test code (github.com/ZYK100/LLCM: ``DEEN/test.py``, ``DEEN/data_manager.py``,
``AGW/eval_metrics.py``), which produced the published LLCM baseline table.

``variant="standard"`` (docs/evaluation.md): IR->VIS ranks every test NIR image against a gallery
of one VIS image per (id, camera); VIS->IR ranks every test VIS image against one NIR image per
(id, camera). Exclusion: same pid and same camera number; unique-id CMC (``eval_llcm``: the best-
ranked image of each identity, ``np.unique(..., return_index=True)`` over the kept list); mAP and
mINP over the full kept list; 10 trials.

How the published numbers were computed (``variant="official"`` reproduces it), read from the
released code:

- sampler: ``process_gallery_llcm(mode, trial)`` calls ``random.seed(trial)`` for trial 0..9 and,
  for each id of ``idx/test_id.txt`` in ascending order and each camera folder in ascending order
  (VIS ``test_vis/cam1..cam9``; NIR ``test_nir/cam1,2,4..9`` - there is no NIR cam3), appends
  ``random.choice(sorted(files))`` where the folder exists. Both variants use this sampler.
- IR->VIS (``test_mode = [1, 2]``): query = all NIR test images, gallery = the VIS sample; as above.
- VIS->IR (``test_mode = [2, 1]``): the gallery drawn is the *NIR* sample and the query set is all
  VIS images, but the script then evaluates ``eval_llcm(-distmat, gall_label, query_label,
  gall_cam, query_cam)`` with ``distmat = gall_feat @ query_feat.T`` - the ranked lists belong to
  the sampled NIR images (one per id and camera) and are drawn from *all* VIS test images. That is
  what ``official`` computes for ``vis_to_ir``.
- exclusion same pid + same camera number (camera parsed from the folder name); unique-id CMC
  summed over all rows and divided by the number of rows with a match (rows without one add zeros,
  so this equals our mean over valid rows); mAP / mINP over valid rows; ``np.argsort`` (unstable)
  on ``-q @ g.T``: distances are the negated inner product of the un-normalised features (the sum
  of the original and flipped images' features) - pass ``metric="inner_product"`` and
  flip-summed features (``helpers.flip_average``) to reproduce it exactly; ties aside, any
  positive rescaling of the features ranks the same.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from reid_pipeline.data.records import Record
from reid_pipeline.evaluation.distance import Metric
from reid_pipeline.evaluation.protocols.core import (
    ProtocolResult,
    RankOptions,
    RecordArrays,
    feature_rows,
    record_arrays,
    register_protocol,
    run_ranking,
    setting_result,
)

VARIANTS = ("standard", "official")
DIRECTIONS = ("ir_to_vis", "vis_to_ir")
NUM_TRIALS = 10


def sample_one_per_camera(
    records: RecordArrays, *, trial: int, test_ids: Sequence[int]
) -> np.ndarray:
    """One index per (id, camera): ``random.seed(trial)``, ids ascending, cameras ascending,
    ``random.choice`` over the group's paths sorted (= file names sorted within one folder)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i in np.argsort(np.array(records.paths, dtype=object), kind="stable"):
        groups.setdefault((int(records.pids[i]), int(records.camids[i])), []).append(int(i))
    cams = sorted({c for _, c in groups})
    rng = random.Random(trial)
    ids = sorted(int(p) for p in test_ids)
    return np.array([rng.choice(groups[p, c]) for p in ids for c in cams if (p, c) in groups])


def evaluate_llcm(
    q_feats: Any,
    g_feats: Any,
    query: Sequence[Record] | pd.DataFrame,
    gallery: Sequence[Record] | pd.DataFrame,
    *,
    info: Mapping[str, Any] | None = None,
    metric: Metric = "cosine",
    rerank: bool = False,
    rerank_options: Mapping[str, Any] | None = None,
    max_rank: int = 50,
    map_max_rank: int | None = None,
    variant: str = "standard",
    directions: Sequence[str] = DIRECTIONS,
    trials: int | Sequence[int] = NUM_TRIALS,
) -> ProtocolResult:
    """LLCM: ``query`` = test NIR, ``gallery`` = all test VIS (as the loader gives them).

    ``variant``: ``"standard"`` or ``"official"`` (the released test script; see the module
    docstring); ``directions``: ``"ir_to_vis"`` / ``"vis_to_ir"``; ``trials``: a count or ids.
    """
    opts = RankOptions.build(
        metric=metric,
        rerank=rerank,
        rerank_options=rerank_options,
        max_rank=max_rank,
        map_max_rank=map_max_rank,
    )
    info = dict(info or {})
    if variant not in VARIANTS:
        raise ValueError(f"LLCM variant must be one of {list(VARIANTS)}, got {variant!r}")
    if isinstance(directions, str):
        directions = (directions,)
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"LLCM directions must be among {list(DIRECTIONS)}, got {bad}")
    if isinstance(trials, int):
        trials = range(trials)
    nir, vis = record_arrays(query, name="query"), record_arrays(gallery, name="gallery")
    feature_rows(q_feats, len(nir), name="q_feats", records="query")
    feature_rows(g_feats, len(vis), name="g_feats", records="gallery")
    if np.any(nir.modality != 1) or np.any(vis.modality != 0):
        raise ValueError(
            "LLCM query records must be near-infrared (modality 1) and gallery records visible "
            "(modality 0), as the llcm loader returns them"
        )
    test_ids = info.get("test_ids")
    if test_ids is None or len(test_ids) == 0:  # the loader's list; else every pid present
        test_ids = sorted(set(nir.pids.tolist()) | set(vis.pids.tolist()))
    all_nir, all_vis = np.arange(len(nir)), np.arange(len(vis))
    rules = {"excluded": "same pid and same camera number", "cmc": "unique identity"}
    settings = {}
    for direction in directions:
        runs = []
        for trial in trials:
            if direction == "ir_to_vis":
                sampled = sample_one_per_camera(vis, trial=trial, test_ids=test_ids)
                r = run_ranking(
                    q_feats,
                    g_feats,
                    nir,
                    vis,
                    q_idx=all_nir,
                    g_idx=sampled,
                    opts=opts,
                    unique_id_cmc=True,
                )
                runs.append((trial, r, len(all_nir), len(sampled)))
                rows = "all NIR test images"
            elif variant == "standard":
                sampled = sample_one_per_camera(nir, trial=trial, test_ids=test_ids)
                r = run_ranking(
                    g_feats,
                    q_feats,
                    vis,
                    nir,
                    q_idx=all_vis,
                    g_idx=sampled,
                    opts=opts,
                    unique_id_cmc=True,
                )
                runs.append((trial, r, len(all_vis), len(sampled)))
                rows = "all VIS test images"
            else:  # the released script's VIS->IR: sampled NIR rows against every VIS image
                sampled = sample_one_per_camera(nir, trial=trial, test_ids=test_ids)
                r = run_ranking(
                    q_feats,
                    g_feats,
                    nir,
                    vis,
                    q_idx=sampled,
                    g_idx=all_vis,
                    opts=opts,
                    unique_id_cmc=True,
                )
                runs.append((trial, r, len(sampled), len(all_vis)))
                rows = "one NIR image per (id, camera), ranked against all VIS images"
        settings[direction] = setting_result(
            direction, runs, {**rules, "variant": variant, "queries": rows}
        )
    return ProtocolResult("llcm", settings, {**opts.info(), "variant": variant})


register_protocol("llcm", evaluate_llcm)
