"""Project hooks.

- ``ProgressHooks``: log each node's duration so long runs show where time goes.
- ``RunHooks``: give every run an id, hold one lock per architecture whose outputs the run
  writes (``runlock``), and hand a run that starts mid-pipeline (``--from-nodes``) the in-memory
  settings its first node needs, resolved from the parameters exactly as ``check_parameters``
  resolves them.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from kedro.framework.hooks import hook_impl

from reid_pipeline import runlock

logger = logging.getLogger(__name__)


class ProgressHooks:
    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        started = self._started.pop(node.name, None)
        if started is not None:
            logger.info("node %s finished in %.1f s", node.name, time.perf_counter() - started)


def _architectures(pipeline: Any) -> list[str]:
    from reid_pipeline.models import list_models

    known = set(list_models())
    return sorted({n.namespace.split(".")[0] for n in pipeline.nodes if n.namespace} & known)


class RunHooks:
    def __init__(self) -> None:
        self._locked: list[str] = []

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        run_id = os.environ.get("REID_RUN_ID") or str(
            run_params.get("run_id") or run_params.get("session_id") or ""
        )
        archs = _architectures(pipeline)
        for arch in archs:
            runlock.acquire(arch, run_id=run_id)
            self._locked.append(arch)
        inputs = pipeline.inputs()
        for arch in archs:
            if f"{arch}.run_id" in inputs:
                catalog[f"{arch}.run_id"] = run_id
            wanted = {f"{arch}.experiment", f"{arch}.dataset_config"} & inputs
            if wanted:
                self._provide_settings(arch, catalog, wanted)

    @staticmethod
    def _provide_settings(arch: str, catalog: Any, wanted: set[str]) -> None:
        from reid_pipeline.experiment.checks import check_recipe
        from reid_pipeline.pipelines.train.nodes import resolve

        experiment = resolve(
            catalog.load(f"params:{arch}"),
            catalog.load("params:datasets"),
            catalog.load("params:protocols"),
            catalog.load("params:recipe_override"),
            catalog.load("params:live_metrics_dir"),
            arch,
        )
        check_recipe(experiment.where, experiment.recipe)
        if f"{arch}.experiment" in wanted:
            catalog[f"{arch}.experiment"] = experiment
        if f"{arch}.dataset_config" in wanted:
            catalog[f"{arch}.dataset_config"] = experiment.dataset.as_dict()
        logger.info("%s: settings resolved from the parameters (%s)", arch, experiment.where)

    def _release(self) -> None:
        while self._locked:
            runlock.release(self._locked.pop())

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._release()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._release()
