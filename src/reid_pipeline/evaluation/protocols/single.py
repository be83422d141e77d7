"""Single-modality protocol (Market-1501, DukeMTMC-reID, CUHK03-NP, MSMT17): one trial, the
standard same-pid-same-camera removal, standard CMC (torchreid / fast-reid ``eval_market1501``).

CUHK03's 767/700 "new protocol" uses the Market metric. Distractors (Market's pid 0) and junk are
the loaders' business: a distractor is a gallery identity no query has, junk images are dropped at
load time. Rules: docs/evaluation.md.
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

#: the single-modality dataset formats (one protocol, registered under each name)
SINGLE_MODALITY = ("market1501", "dukemtmc", "cuhk03", "msmt17")


def evaluate_single_modality(
    q_feats: Any,
    g_feats: Any,
    query: Sequence[Record] | pd.DataFrame,
    gallery: Sequence[Record] | pd.DataFrame,
    *,
    dataset: str = "market1501",
    metric: Metric = "cosine",
    rerank: bool = False,
    rerank_options: Mapping[str, Any] | None = None,
    max_rank: int = 50,
    map_max_rank: int | None = None,
) -> ProtocolResult:
    """Market-1501 / DukeMTMC-reID / CUHK03-NP / MSMT17: one ranking, standard rules."""
    opts = RankOptions.build(
        metric=metric,
        rerank=rerank,
        rerank_options=rerank_options,
        max_rank=max_rank,
        map_max_rank=map_max_rank,
    )
    q, g = record_arrays(query, name="query"), record_arrays(gallery, name="gallery")
    feature_rows(q_feats, len(q), name="q_feats", records="query")
    feature_rows(g_feats, len(g), name="g_feats", records="gallery")
    qi, gi = np.arange(len(q)), np.arange(len(g))
    r = run_ranking(q_feats, g_feats, q, g, q_idx=qi, g_idx=gi, opts=opts)
    info = {"exclusion": "same pid and same camid", "cmc": "standard"}
    setting = setting_result("single_query", [(0, r, len(q), len(g))], info)
    return ProtocolResult(dataset, {"single_query": setting}, opts.info())


for _name in SINGLE_MODALITY:
    register_protocol(_name, evaluate_single_modality, dataset=_name)
