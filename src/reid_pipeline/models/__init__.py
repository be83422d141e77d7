"""Models: one file per architecture, shared blocks in ``layers/``."""

from reid_pipeline.models.base import ReidModel, ReidOutput
from reid_pipeline.models.registry import (
    create_model,
    list_models,
    model_options,
    register_model,
)

__all__ = [
    "ReidModel",
    "ReidOutput",
    "create_model",
    "list_models",
    "model_options",
    "register_model",
]
