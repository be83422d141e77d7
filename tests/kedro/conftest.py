"""A throw-away copy of the Kedro project (conf/ + pyproject.toml + empty data layers) in
tmp_path, and a runner for its pipelines with the embedded synthetic data at its tiny size."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)

#: Overrides that make any architecture's train pipeline run in seconds on the tiny synthetic
#: data (a few identities, 96 x 48 crops, one epoch).
TINY: dict[str, Any] = {
    "input": {"height": 96, "width": 48},
    "sampler": {"p": 2, "k": 2},
    "loader": {"num_workers": 0, "eval_batch_size": 32},
    "fit": {"epochs": 1, "progress": False},
    "scheduler": {"name": "constant"},
    "validation": {"num_ids": 0},
}
TINY_MODEL: dict[str, dict[str, Any]] = {
    "pmm": {"block_size": [1, 1], "top_k": 1, "embed_dim": 32},
    "dimn": {"embed_dim": 32, "branch2_dim": 32, "saliency_dim": 32},
    "wrimnet": {"input_size": [96, 48]},
    "fienet": {"pfam_groups": 8},
}
#: Both datasets at the generator's tiny preset.
TINY_DATASETS: dict[str, Any] = {
    slot: {"synthetic": {"preset": "tiny", "seed": 0, "progress": False}}
    for slot in ("single_modality", "cross_modality")
}


def tiny_params(arch: str, recipe: str = "cpu_synthetic", **extra: Any) -> dict[str, Any]:
    """Runtime parameters for ``train_<arch>``: its ``recipe`` made tiny, the tiny datasets."""
    params = {**TINY, **extra}
    if arch in TINY_MODEL:
        params["model"] = {**TINY_MODEL[arch], **params.get("model", {})}
    return {arch: {recipe: params}, "datasets": TINY_DATASETS}


def _copy_project(dest: Path) -> Path:
    shutil.copytree(ROOT / "conf", dest / "conf", ignore=shutil.ignore_patterns("local"))
    (dest / "conf" / "local").mkdir()
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    (dest / "src").mkdir()  # the package itself is imported from the installed project
    for layer in LAYERS:
        (dest / "data" / layer).mkdir(parents=True)
    (dest / "logs").mkdir()
    return dest


@pytest.fixture
def kedro_project(tmp_path: Path) -> Iterator[Path]:
    """A project copy; the working directory is the project (relative data paths resolve)."""
    project = _copy_project(tmp_path / "project")
    cwd = os.getcwd()
    os.chdir(project)
    try:
        yield project
    finally:
        os.chdir(cwd)


@pytest.fixture
def run_pipeline(kedro_project: Path) -> Callable[..., dict[str, Any]]:
    """``run_pipeline(name, params=None, env=None)`` runs a registered pipeline of the project
    copy in-process and returns Kedro's result."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(kedro_project)

    def run(name: str, params: dict[str, Any] | None = None, env: str | None = None) -> Any:
        with KedroSession.create(
            project_path=kedro_project, env=env, runtime_params=params or {}
        ) as session:
            return session.run(pipeline_names=[name])

    return run
