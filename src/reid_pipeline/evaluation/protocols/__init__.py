"""Evaluation protocols: one result type for every dataset, one dispatcher, one module per protocol.

- ``core``: ``ProtocolResult`` / ``SettingResult``, the record plumbing, the registry.
- ``single``: market1501, dukemtmc, cuhk03, msmt17 (one ranking, the standard rules).
- ``sysu``: SYSU-MM01 (all / indoor search x single / multi-shot, sampled galleries, 10 trials).
- ``llcm``: LLCM (IR->VIS and VIS->IR, sampled galleries, 10 trials; standard or official).
- ``regdb``: RegDB (thermal->visible and visible->thermal of one trial).
- ``custom``: manifest and folders, your own images (single- or cross-modality).

Each protocol module registers itself under its dataset format names when imported; importing
this package imports them all. Adding a protocol = one module calling ``register_protocol`` + one
import line below (``protocol_names()`` lists the names, sorted). The rules: docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from reid_pipeline.data.records import Record
from reid_pipeline.evaluation.distance import Metric
from reid_pipeline.evaluation.protocols.core import (
    COMMON_OPTIONS,
    METRIC_KEYS,
    Protocol,
    ProtocolResult,
    RankOptions,
    RecordArrays,
    SettingResult,
    feature_rows,
    get_protocol,
    protocol_names,
    record_arrays,
    register_protocol,
    run_ranking,
    setting_result,
)

# importing each protocol module registers its dataset format names
from reid_pipeline.evaluation.protocols.custom import evaluate_custom
from reid_pipeline.evaluation.protocols.llcm import evaluate_llcm
from reid_pipeline.evaluation.protocols.regdb import evaluate_regdb
from reid_pipeline.evaluation.protocols.single import SINGLE_MODALITY, evaluate_single_modality
from reid_pipeline.evaluation.protocols.sysu import evaluate_sysu_mm01, load_sysu_permutation

__all__ = [
    "COMMON_OPTIONS",
    "METRIC_KEYS",
    "SINGLE_MODALITY",
    "Protocol",
    "ProtocolResult",
    "RankOptions",
    "RecordArrays",
    "SettingResult",
    "evaluate_custom",
    "evaluate_llcm",
    "evaluate_protocol",
    "evaluate_regdb",
    "evaluate_single_modality",
    "evaluate_sysu_mm01",
    "feature_rows",
    "get_protocol",
    "load_sysu_permutation",
    "protocol_names",
    "record_arrays",
    "register_protocol",
    "run_ranking",
    "setting_result",
]


def evaluate_protocol(  # noqa: PLR0917 - (dataset, features, records, info) as the brief fixes it
    dataset: str,
    q_feats: Any,
    g_feats: Any,
    query: Sequence[Record] | pd.DataFrame,
    gallery: Sequence[Record] | pd.DataFrame,
    info: Mapping[str, Any] | None = None,
    *,
    metric: Metric = "cosine",
    rerank: bool = False,
    rerank_options: Mapping[str, Any] | None = None,
    max_rank: int = 50,
    map_max_rank: int | None = None,
    **protocol_options: Any,
) -> ProtocolResult:
    """Evaluate embeddings with ``dataset``'s protocol.

    ``dataset``: a registered dataset format name (``protocol_names()``: ``cuhk03``,
    ``dukemtmc``, ``folders``, ``llcm``, ``manifest``, ``market1501``, ``msmt17``, ``regdb``,
    ``sysu_mm01``). ``q_feats`` / ``g_feats``: one row per query / gallery record. ``info``: the
    loader's ``Splits.info``. ``metric``: ``cosine`` / ``euclidean`` / ``inner_product``.
    ``rerank``: k-reciprocal re-ranking (``rerank_options``: ``k1``, ``k2``, ``lambda_value``).
    ``map_max_rank``: AP summed over the first N ranks only (the official PMM evaluator's 50;
    None: the standard full-list AP).
    ``protocol_options`` go to the protocol (SYSU-MM01: ``modes``, ``shots``, ``sampler``,
    ``perm_path``, ``trials``; RegDB: ``directions``; LLCM: ``variant``, ``directions``,
    ``trials``; manifest / folders: ``directions``); unknown ones are refused by name.
    """
    common = {
        "metric": metric,
        "rerank": rerank,
        "rerank_options": rerank_options,
        "max_rank": max_rank,
        "map_max_rank": map_max_rank,
    }
    RankOptions.build(**common)  # fail early, before any work
    protocol = get_protocol(dataset)
    return protocol(q_feats, g_feats, query, gallery, info, common, protocol_options)
