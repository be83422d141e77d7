"""Project pipelines: one per folder under ``pipelines/`` that has a ``create_pipeline``
(``generate_synthetic``, ``ingest``, ``report``, ``train`` = every architecture, and the
inference pipelines), plus one ``train_<arch>`` per registered model, made in one loop from the
model registry (docs/adding_an_architecture.md)."""

from __future__ import annotations

import importlib
import pkgutil

from kedro.pipeline import Pipeline

from reid_pipeline import pipelines as _package
from reid_pipeline.models import list_models
from reid_pipeline.pipelines.train import create_train_pipeline

DEFAULT_PIPELINE = "train_dimn"


def register_pipelines() -> dict[str, Pipeline]:
    found: dict[str, Pipeline] = {}
    for info in pkgutil.iter_modules(_package.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{_package.__name__}.{info.name}")
        create = getattr(module, "create_pipeline", None)
        if create is None:  # a folder of helpers, not a pipeline
            continue
        found[info.name] = create()
    for arch in list_models():
        found[f"train_{arch}"] = create_train_pipeline(arch)
    found["__default__"] = found[DEFAULT_PIPELINE]
    return found
