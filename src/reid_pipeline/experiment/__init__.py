"""One experiment end to end, Kedro-free: configuration checks, training from manifests,
embedding, protocol evaluation. The Kedro train template's nodes are thin calls into this package,
and notebooks can use it directly."""

from reid_pipeline.experiment.config import ExperimentConfig, parse_config, select_experiment
from reid_pipeline.experiment.run import (
    TrainOutcome,
    build_model,
    embed_records,
    headline,
    train_from_records,
)

__all__ = [
    "ExperimentConfig",
    "TrainOutcome",
    "build_model",
    "embed_records",
    "headline",
    "parse_config",
    "select_experiment",
    "train_from_records",
]
