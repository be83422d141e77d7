"""RegDB protocol: thermal->visible as the loader gives it (query = thermal test images, gallery =
visible test images of the trial) and visible->thermal with the roles swapped; no exclusion,
standard CMC (``eval_regdb`` of the VI-ReID baseline code). One model per trial: evaluate each
trial and merge them with ``ProtocolResult.combine``. Rules: docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from reid_pipeline.data.records import Record
from reid_pipeline.evaluation.distance import Metric
from reid_pipeline.evaluation.protocols.core import (
    ProtocolResult,
    RankOptions,
    feature_rows,
    record_arrays,
    register_protocol,
    run_ranking,
    setting_result,
)

DIRECTIONS = ("thermal_to_visible", "visible_to_thermal")


def evaluate_regdb(
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
    directions: Sequence[str] = DIRECTIONS,
) -> ProtocolResult:
    """RegDB, one trial: thermal->visible (query = thermal) and visible->thermal (roles swapped).

    ``info["trial"]`` (from the loader) labels the trial; ``directions`` picks the settings.
    """
    opts = RankOptions.build(
        metric=metric,
        rerank=rerank,
        rerank_options=rerank_options,
        max_rank=max_rank,
        map_max_rank=map_max_rank,
    )
    info = dict(info or {})
    if isinstance(directions, str):
        directions = (directions,)
    q, g = record_arrays(query, name="query"), record_arrays(gallery, name="gallery")
    feature_rows(q_feats, len(q), name="q_feats", records="query")
    feature_rows(g_feats, len(g), name="g_feats", records="gallery")
    if np.any(q.modality != 1) or np.any(g.modality != 0):
        raise ValueError(
            "RegDB query records must be thermal (modality 1) and gallery records visible "
            "(modality 0), as the regdb loader returns them"
        )
    trial = info.get("trial")
    qi, gi = np.arange(len(q)), np.arange(len(g))
    settings = {}
    for direction in directions:
        if direction == "thermal_to_visible":
            r = run_ranking(
                q_feats, g_feats, q, g, q_idx=qi, g_idx=gi, opts=opts, remove_same_camera=False
            )
            sizes = (len(q), len(g))
        elif direction == "visible_to_thermal":
            r = run_ranking(
                g_feats, q_feats, g, q, q_idx=gi, g_idx=qi, opts=opts, remove_same_camera=False
            )
            sizes = (len(g), len(q))
        else:
            raise ValueError(
                f"RegDB direction must be 'thermal_to_visible' or 'visible_to_thermal', got "
                f"{direction!r}"
            )
        settings[direction] = setting_result(
            direction, [(trial, r, *sizes)], {"exclusion": "none", "cmc": "standard"}
        )
    return ProtocolResult("regdb", settings, {**opts.info(), "trial": trial})


register_protocol("regdb", evaluate_regdb)
