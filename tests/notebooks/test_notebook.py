"""notebooks/exploration.ipynb never rots: it is committed without outputs, and executed here
(nbclient, the venv's ipykernel) in a project copy after a tiny ``train_dimn`` run, as a user
runs it after ``kedro run --pipeline=train_dimn``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from nbclient import NotebookClient

from reid_pipeline.data import generate_synthetic
from tests.kedro.conftest import ROOT, _copy_project, tiny_params

NOTEBOOK = ROOT / "notebooks" / "exploration.ipynb"
EXECUTED = ROOT / "test-artifacts" / "exploration.executed.ipynb"


def _code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in _code_cells(nb):
        assert cell.outputs == [], cell.source[:60]
        assert cell.execution_count is None, cell.source[:60]
    first = _code_cells(nb)[0].source
    assert "%load_ext kedro.ipython" in first
    assert "%reload_kedro" in first


def _texts(nb: Any) -> str:
    """Every stream and text/plain output, joined."""
    parts = []
    for cell in _code_cells(nb):
        for out in cell.outputs:
            if out.output_type == "stream":
                parts.append(out.text)
            elif "data" in out:
                parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_notebook_runs_after_a_tiny_train_dimn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _copy_project(tmp_path / "project")
    monkeypatch.chdir(project)
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=tiny_params("dimn")) as session:
        session.run(pipeline_names=["train_dimn"])
    # the visible-infrared section reads the SYSU-MM01 folder when it exists
    generate_synthetic(
        project / "data" / "01_raw" / "synthetic", "sysu_mm01", preset="tiny", progress=False
    )
    (project / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, project / "notebooks")

    nb = nbformat.read(project / "notebooks" / NOTEBOOK.name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(project / "notebooks")}},
    )
    try:
        client.execute()
    finally:
        EXECUTED.parent.mkdir(exist_ok=True)
        nbformat.write(nb, EXECUTED)

    errors = [o for c in _code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert errors == []
    text = _texts(nb)
    assert f"project {project}, architecture dimn" in text
    assert "dataset: market1501 (synthetic: True)" in text
    assert "infrared" in text  # the SYSU-MM01 samples, both modalities counted
    metrics = json.loads((project / "data/08_reporting/dimn/metrics.json").read_text())
    assert f"{100 * metrics['trained']['R1']:.2f}".rstrip("0").rstrip(".") in text
    assert "no report yet" in text  # report.md does not exist in this copy
    images = [o for c in _code_cells(nb) for o in c.outputs if "image/png" in o.get("data", {})]
    # training samples (Market), samples (SYSU, both modalities), CMC, loss, rank list, and the
    # papers' figures: activation maps, t-SNE, stripes (dimn has stripes)
    assert len(images) == 8
