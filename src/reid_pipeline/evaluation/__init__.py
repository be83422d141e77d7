"""Evaluation: distances, ranking metrics, protocols and re-ranking (Kedro-free).

- ``evaluate_rank`` / ``evaluate_from_features``: CMC, mAP, mINP (``RankResult``).
- ``evaluate_protocol``: every dataset's protocol (``ProtocolResult``).
- ``re_ranking`` (exact, from matrices) / ``re_ranking_from_features`` / ``iter_re_ranked``.
- ``pairwise_distance``, ``iter_distance_blocks``, ``flip_average``, ``average_query_expansion``.
"""

from reid_pipeline.evaluation.distance import METRICS, iter_distance_blocks, pairwise_distance
from reid_pipeline.evaluation.helpers import average_query_expansion, flip_average, l2_normalize
from reid_pipeline.evaluation.llcm import evaluate_llcm
from reid_pipeline.evaluation.protocols import (
    ProtocolResult,
    RankOptions,
    SettingResult,
    evaluate_protocol,
    evaluate_regdb,
    evaluate_single_modality,
)
from reid_pipeline.evaluation.rank import (
    SKIP_REASONS,
    RankResult,
    evaluate_from_features,
    evaluate_rank,
)
from reid_pipeline.evaluation.rerank import iter_re_ranked, re_ranking, re_ranking_from_features
from reid_pipeline.evaluation.sysu import evaluate_sysu_mm01, load_sysu_permutation

__all__ = [
    "METRICS",
    "SKIP_REASONS",
    "ProtocolResult",
    "RankOptions",
    "RankResult",
    "SettingResult",
    "average_query_expansion",
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
    "re_ranking",
    "re_ranking_from_features",
]
