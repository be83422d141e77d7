"""Evaluation: distances, ranking metrics, protocols and re-ranking (Kedro-free)."""

from reid_pipeline.evaluation.distance import METRICS, iter_distance_blocks, pairwise_distance
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
    "RankResult",
    "evaluate_from_features",
    "evaluate_rank",
    "iter_distance_blocks",
    "iter_re_ranked",
    "pairwise_distance",
    "re_ranking",
    "re_ranking_from_features",
]
