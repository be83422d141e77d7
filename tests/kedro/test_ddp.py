"""`torchrun --nproc_per_node=2 -m reid_pipeline.ddp` trains a train_<arch> pipeline with DDP
(gloo on CPU) and leaves the same catalog outputs as a single-process `kedro run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kedro.conftest import tiny_params


@pytest.mark.slow
def test_torchrun_two_processes_gloo(kedro_project: Path) -> None:
    params = tiny_params("bot", fit={"epochs": 2, "progress": False})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            "-m",
            "reid_pipeline.ddp",
            "--pipeline",
            "train_bot",
            "--params",
            json.dumps(params),
        ],
        cwd=kedro_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(
        (kedro_project / "data" / "06_models" / "bot" / "training_summary.json").read_text()
    )
    assert summary["processes"] == 2
    assert summary["epochs"] == 2
    metrics = json.loads(
        (kedro_project / "data" / "08_reporting" / "bot" / "metrics.json").read_text()
    )
    assert metrics["training"]["processes"] == 2
    assert 0.0 <= metrics["trained"]["mAP"] <= 1.0
