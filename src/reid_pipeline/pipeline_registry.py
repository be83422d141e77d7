"""Project pipelines: every folder under ``pipelines/`` (``generate_synthetic``, ``ingest``,
``report`` and one ``train_<arch>`` per architecture, each a namespaced copy of the shared
template). Kedro 1.7 imports only the folders a run asks for."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

DEFAULT_PIPELINE = "train_dimn"


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    if DEFAULT_PIPELINE in pipelines:
        pipelines["__default__"] = pipelines[DEFAULT_PIPELINE]
    return pipelines
