"""Adding an architecture is two files: a model file in src/reid_pipeline/models/ and
conf/base/parameters_train_<name>.yml. With only those two files added to a copy of the project
(package and conf), ``kedro registry list`` shows the new pipeline, ``kedro run`` trains and
evaluates it on the embedded data, and the report includes it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kedro.conftest import TINY_DATASETS

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent / "newarch"


def _kedro(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(project / "src"),  # the copy, not the installed package
        "KEDRO_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.mark.slow
def test_a_new_architecture_in_two_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    (project / "logs").mkdir()
    # the two files
    shutil.copy(HERE / "tinynet.py", project / "src" / "reid_pipeline" / "models" / "tinynet.py")
    shutil.copy(HERE / "parameters_train_tinynet.yml", project / "conf" / "base")

    listed = _kedro(project, "registry", "list")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "train_tinynet" in listed.stdout

    tiny = ",".join(
        f"datasets.{slot}.synthetic.{key}={value}"
        for slot, entry in TINY_DATASETS.items()
        for key, value in entry["synthetic"].items()
    )
    ran = _kedro(project, "run", "--pipeline=train_tinynet", f"--params={tiny}")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    metrics = json.loads((project / "data/08_reporting/tinynet/metrics.json").read_text())
    assert metrics["architecture"] == "tinynet"
    assert 0.0 <= metrics["trained"]["mAP"] <= 1.0

    report = _kedro(project, "run", "--pipeline=report")
    assert report.returncode == 0, report.stderr[-3000:]
    assert "| tinynet |" in (project / "data/08_reporting/report.md").read_text()
