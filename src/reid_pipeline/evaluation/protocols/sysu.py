"""SYSU-MM01 evaluation: all-/indoor-search x single-/multi-shot, 10 trials, two gallery samplers.

Reference: A. Wu et al., "RGB-Infrared Cross-Modality Person Re-Identification", ICCV 2017, and the
dataset's MATLAB evaluation kit (``evaluation/`` of github.com/wuancong/SYSU-MM01:
``evaluation_SYSU_MM01.m``, ``get_testing_set.m``, ``get_cmc_multi_cam.m``,
``get_map_multi_cam.m``).

Queries: every infrared image (cam3, cam6) of the 96 test ids, in both modes (the kit's probe
cameras are [3 6] for all- and indoor-search). Gallery cameras: all-search 1, 2, 4, 5; indoor 1, 2.
Exclusion: the kit gives cameras the location labels [1 2 2 4 5 6] and removes gallery images of the
probe's location - i.e. a cam3 query never matches cam2 images (any identity); nothing else.
CMC: ``unique(..., 'stable')`` over the ranked gallery ids - each identity counted once at its best
rank - averaged over queries with a match; mAP (and our mINP) over the full list after exclusion.

Samplers (a gallery per trial):

- ``"official"`` - ``rand_perm_cam.mat`` of the kit (a path the user gives; it is not part of the
  image download). Its variable ``rand_perm_cam`` is a 6 x 1 cell (one per camera); cell ``cam``
  holds one entry per person id ``1..333`` (``1..533`` for cams 3-5), each a ``10 x n`` matrix whose
  row ``t`` is a permutation of ``1..n``, n = that id's image count in that camera (0 columns when
  the id is absent there). The kit takes ``rand_perm_cam{cam}{id}(trial, 1:shots)`` as indices into
  the id's features in that camera, stored in image order: entry ``k`` is the k-th image
  ``cam<c>/<PPPP>/<k:04d>.jpg`` (SYSU numbers each folder's images ``0001.jpg`` .. ``n``, as the
  Python ports map it: ``'cam{}/{:0>4d}/{:0>4d}'.format(cam, id, k)``). Trials 0..9 here are MATLAB
  rows 1..10. Single-shot (1) and multi-shot (10) galleries: 301 / 3,010 (all), 112 / 1,120
  (indoor).
- ``"common"`` - what most VI-ReID code does (``process_gallery_sysu`` in the AGW / DDAG / DEEN
  repositories): ``random.seed(trial)`` for trial 0..9, then for each test id in ascending order
  and, inside it, each gallery camera in ascending order (cam1, cam2, cam4, cam5), one
  ``random.choice(sorted(files))`` where the folder exists. Single-shot only. (A private
  ``random.Random(trial)`` gives the same draws without touching the global generator.)

The rules side by side with the other protocols: docs/evaluation.md.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
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

GALLERY_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}  # camera numbers (camid + 1)
QUERY_CAMERAS = (3, 6)
#: the kit's camera -> location label: cam3 shares cam2's room
LOCATION = {1: 1, 2: 2, 3: 2, 4: 4, 5: 5, 6: 6}
SAMPLERS = ("official", "common")
NUM_TRIALS = 10


def load_sysu_permutation(path: str | os.PathLike[str]) -> np.ndarray:
    """``rand_perm_cam`` of the kit's ``rand_perm_cam.mat``: a (6, 1) object array of cells."""
    from scipy.io import loadmat

    p = Path(path)
    if not p.is_file():
        raise ValueError(
            f"{p}: rand_perm_cam.mat not found; it ships with SYSU-MM01's evaluation kit "
            "(evaluation/data_split/rand_perm_cam.mat of github.com/wuancong/SYSU-MM01)"
        )
    try:
        perm = loadmat(str(p))["rand_perm_cam"]
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{p}: not a MATLAB file with a 'rand_perm_cam' variable ({exc})") from exc
    if perm.shape[0] != 6:
        raise ValueError(f"{p}: rand_perm_cam must have one cell per camera (6), got {perm.shape}")
    return perm


def _image_number(path: str) -> int:
    stem = Path(path).stem
    if not stem.isdigit():
        raise ValueError(
            f"{path}: the official SYSU-MM01 sampler needs the dataset's numbered file names "
            "(0001.jpg, 0002.jpg, ...)"
        )
    return int(stem)


def _groups(g: RecordArrays) -> dict[tuple[int, int], list[int]]:
    """(pid, camera number) -> gallery indices sorted by path (= by file name in one folder)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i in np.argsort(np.array(g.paths, dtype=object), kind="stable"):
        groups.setdefault((int(g.pids[i]), int(g.camids[i]) + 1), []).append(int(i))
    return groups


def sample_gallery(
    gallery: RecordArrays,
    *,
    mode: str,
    shots: int,
    trial: int,
    sampler: str,
    test_ids: Sequence[int],
    perm: np.ndarray | None = None,
) -> np.ndarray:
    """Indices into ``gallery`` of one trial's SYSU-MM01 gallery (see the module docstring)."""
    if mode not in GALLERY_CAMERAS:
        raise ValueError(f"SYSU-MM01 mode must be 'all' or 'indoor', got {mode!r}")
    cams = GALLERY_CAMERAS[mode]
    groups = _groups(gallery)
    ids = sorted(int(i) for i in test_ids)
    if sampler == "common":
        if shots != 1:
            raise ValueError(
                "the 'common' SYSU-MM01 sampler is single-shot only (random.choice per id and "
                "camera); use sampler='official' with rand_perm_cam.mat for multi-shot"
            )
        rng = random.Random(trial)
        return np.array(
            [rng.choice(groups[pid, c]) for pid in ids for c in cams if (pid, c) in groups]
        )
    if sampler != "official":
        raise ValueError(f"SYSU-MM01 sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    if perm is None:
        raise ValueError("the 'official' SYSU-MM01 sampler needs rand_perm_cam (perm_path)")
    picked = []
    for c in cams:  # the kit's order: cameras, then ids
        cells = perm[c - 1, 0]
        for pid in ids:
            group = groups.get((pid, c), [])
            row = cells[pid - 1, 0] if pid - 1 < cells.shape[0] else np.zeros((NUM_TRIALS, 0))
            if row.shape[1] != len(group):
                raise ValueError(
                    f"rand_perm_cam.mat lists {row.shape[1]} images for cam{c}/{pid:04d} but the "
                    f"gallery records have {len(group)}; the official sampler needs the complete "
                    "SYSU-MM01 release"
                )
            if not group:
                continue
            if not 0 <= trial < row.shape[0]:
                raise ValueError(f"trial must be in 0..{row.shape[0] - 1}, got {trial}")
            by_number = {_image_number(gallery.paths[i]): i for i in group}
            for k in row[trial, :shots]:
                if int(k) not in by_number:
                    raise ValueError(
                        f"rand_perm_cam.mat selects cam{c}/{pid:04d}/{int(k):04d}.jpg (trial "
                        f"{trial}) but the gallery records have no such image"
                    )
                picked.append(by_number[int(k)])
    return np.array(picked, dtype=np.int64)


def evaluate_sysu_mm01(
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
    modes: Sequence[str] = ("all", "indoor"),
    shots: Sequence[int] | None = None,
    sampler: str = "common",
    perm_path: str | os.PathLike[str] | None = None,
    trials: int | Sequence[int] = NUM_TRIALS,
) -> ProtocolResult:
    """SYSU-MM01 over ``trials`` per (mode, shots) setting.

    ``modes``: ``"all"`` / ``"indoor"``; ``shots``: 1 (single) / 10 (multi), default (1,) for
    the common sampler and (1, 10) for the official one; ``sampler``: ``"common"`` or
    ``"official"``; ``perm_path``: the kit's ``rand_perm_cam.mat`` (default: ``<dataset_dir>/exp/
    rand_perm_cam.mat`` when that exists); ``trials``: a count (0..n-1) or explicit trial ids.
    """
    opts = RankOptions.build(
        metric=metric,
        rerank=rerank,
        rerank_options=rerank_options,
        max_rank=max_rank,
        map_max_rank=map_max_rank,
    )
    info = dict(info or {})
    if isinstance(modes, str):
        modes = (modes,)
    if sampler not in SAMPLERS:
        raise ValueError(f"SYSU-MM01 sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    shots = tuple((1,) if sampler == "common" else (1, 10)) if shots is None else tuple(shots)
    if isinstance(trials, int):
        trials = range(trials)
    q, g = record_arrays(query, name="query"), record_arrays(gallery, name="gallery")
    feature_rows(q_feats, len(q), name="q_feats", records="query")
    feature_rows(g_feats, len(g), name="g_feats", records="gallery")
    if not np.all(np.isin(q.camids + 1, QUERY_CAMERAS)):
        raise ValueError("SYSU-MM01 query records must be infrared: cam3 / cam6 (camid 2 / 5)")
    if np.any(np.isin(g.camids + 1, QUERY_CAMERAS)):
        raise ValueError(
            "SYSU-MM01 gallery records must be visible: cam1, 2, 4, 5 (camid 0, 1, 3, 4)"
        )
    test_ids = info.get("test_ids")
    if test_ids is None or len(test_ids) == 0:  # the loader's list; else every pid present
        test_ids = sorted(set(q.pids.tolist()) | set(g.pids.tolist()))
    perm = None
    if sampler == "official":
        if perm_path is None and info.get("dataset_dir"):
            candidate = Path(info["dataset_dir"]) / "exp" / "rand_perm_cam.mat"
            perm_path = candidate if candidate.is_file() else None
        if perm_path is None:
            raise ValueError(
                "sampler='official' needs perm_path: the path of rand_perm_cam.mat from "
                "SYSU-MM01's evaluation kit (or put it at <dataset_dir>/exp/rand_perm_cam.mat)"
            )
        perm = load_sysu_permutation(perm_path)
    excluded = {
        a - 1: [b - 1 for b in (1, 2, 4, 5) if LOCATION[b] == LOCATION[a]] for a in QUERY_CAMERAS
    }
    q_idx = np.arange(len(q))
    settings = {}
    for mode in modes:
        for n_shots in shots:
            runs = []
            for trial in trials:
                g_idx = sample_gallery(
                    g,
                    mode=mode,
                    shots=n_shots,
                    trial=trial,
                    sampler=sampler,
                    test_ids=test_ids,
                    perm=perm,
                )
                r = run_ranking(
                    q_feats,
                    g_feats,
                    q,
                    g,
                    q_idx=q_idx,
                    g_idx=g_idx,
                    opts=opts,
                    excluded_cameras=excluded,
                    unique_id_cmc=True,
                )
                runs.append((trial, r, len(q_idx), len(g_idx)))
            name = f"{mode}_search/{'single' if n_shots == 1 else 'multi'}_shot"
            settings[name] = setting_result(
                name,
                runs,
                {
                    "sampler": sampler,
                    "shots": n_shots,
                    "gallery_cameras": list(GALLERY_CAMERAS[mode]),
                    "exclusion": "cam3 queries never match cam2 gallery images",
                    "cmc": "unique identity (best-ranked image per id)",
                },
            )
    return ProtocolResult("sysu_mm01", settings, {**opts.info(), "sampler": sampler})


register_protocol("sysu_mm01", evaluate_sysu_mm01)
