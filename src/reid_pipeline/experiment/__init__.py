"""One experiment end to end, Kedro-free: typed recipes (``recipe``), their checks
(``checks``), training from manifests, embedding and protocol evaluation (``run``), and what a
run reports (``summary``, ``report``). The Kedro nodes are thin calls into this package, and
notebooks can use it directly."""

from reid_pipeline.errors import ConfigError
from reid_pipeline.experiment.modelling import build_model
from reid_pipeline.experiment.recipe import Experiment, Recipe, resolve_experiment
from reid_pipeline.experiment.run import (
    TrainOutcome,
    embed_records,
    rebuild_model,
    train_from_records,
)

__all__ = [
    "ConfigError",
    "Experiment",
    "Recipe",
    "TrainOutcome",
    "build_model",
    "embed_records",
    "rebuild_model",
    "resolve_experiment",
    "train_from_records",
]
