"""Plain per-query reference loops the vectorised evaluation is checked against (tests only).

Written from the field's definition (torchreid / fast-reid ``eval_market1501``; SYSU-MM01's
``get_cmc_multi_cam``), one query at a time with a *stable* argsort.
"""

from __future__ import annotations

import numpy as np


def reference_rank(  # noqa: PLR0917 - the field's positional signature
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int,
    *,
    remove_same_camera: bool = True,
    excluded_cameras: dict[int, set[int]] | None = None,
    unique_id_cmc: bool = False,
) -> tuple[np.ndarray, list[float], list[float], list[int]]:
    """(cmc, all_AP, all_INP, valid query indices) by the per-query loop."""
    excluded_cameras = excluded_cameras or {}
    cmcs, aps, inps, valid = [], [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        remove = np.zeros(len(order), dtype=bool)
        if remove_same_camera:
            remove |= (g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i])
        remove |= np.isin(g_camids[order], list(excluded_cameras.get(int(q_camids[i]), ())))
        kept = order[~remove]
        matches = (g_pids[kept] == q_pids[i]).astype(np.int64)
        if not matches.any():
            continue
        valid.append(i)
        if unique_id_cmc:
            _, first_idx = np.unique(g_pids[kept], return_index=True)
            ids = g_pids[kept][np.sort(first_idx)]
            cmc = (ids == q_pids[i]).cumsum()
        else:
            cmc = matches.cumsum()
        cmc = np.minimum(cmc, 1).astype(np.float64)
        if len(cmc) < max_rank:
            cmc = np.concatenate([cmc, np.full(max_rank - len(cmc), cmc[-1])])
        cmcs.append(cmc[:max_rank])
        hits = matches.cumsum()
        ranks = np.arange(1, len(matches) + 1)
        aps.append(float((hits / ranks * matches).sum() / matches.sum()))
        last = np.flatnonzero(matches)[-1]
        inps.append(float(hits[last] / (last + 1)))
    cmc = np.mean(cmcs, axis=0) if cmcs else np.zeros(max_rank)
    return cmc, aps, inps, valid
