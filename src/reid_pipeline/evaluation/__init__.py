"""Evaluation: distances, ranking metrics, protocols and re-ranking (Kedro-free).

- ``evaluate_rank`` / ``evaluate_from_features``: CMC, mAP, mINP (``RankResult``).
- ``evaluate_protocol``: every dataset's protocol (``ProtocolResult``); ``protocols/`` holds one
  module per protocol, registered by dataset format name (``register_protocol``).
- ``re_ranking`` (exact, from matrices) / ``re_ranking_from_features`` / ``iter_re_ranked``.
- ``pairwise_distance``, ``distance_rows`` (a few query rows, for rank lists),
  ``iter_distance_blocks``, ``flip_average``, ``average_query_expansion``.

Metrics, protocol rules, re-ranking and speed: docs/evaluation.md.
"""

from reid_pipeline.evaluation.distance import (
    METRICS,
    distance_rows,
    iter_distance_blocks,
    pairwise_distance,
)
from reid_pipeline.evaluation.helpers import average_query_expansion, flip_average, l2_normalize
from reid_pipeline.evaluation.protocols import (
    ProtocolResult,
    RankOptions,
    SettingResult,
    evaluate_custom,
    evaluate_llcm,
    evaluate_protocol,
    evaluate_regdb,
    evaluate_single_modality,
    evaluate_sysu_mm01,
    load_sysu_permutation,
    protocol_names,
    register_protocol,
)
from reid_pipeline.evaluation.rank import (
    SKIP_REASONS,
    RankResult,
    evaluate_from_features,
    evaluate_rank,
)
from reid_pipeline.evaluation.rerank import iter_re_ranked, re_ranking, re_ranking_from_features

__all__ = [
    "METRICS",
    "SKIP_REASONS",
    "ProtocolResult",
    "RankOptions",
    "RankResult",
    "SettingResult",
    "average_query_expansion",
    "distance_rows",
    "evaluate_custom",
    "evaluate_from_features",
    "evaluate_llcm",
    "evaluate_protocol",
    "evaluate_rank",
    "evaluate_regdb",
    "evaluate_single_modality",
    "evaluate_sysu_mm01",
    "flip_average",
    "iter_distance_blocks",
    "iter_re_ranked",
    "l2_normalize",
    "load_sysu_permutation",
    "pairwise_distance",
    "protocol_names",
    "re_ranking",
    "re_ranking_from_features",
    "register_protocol",
]
