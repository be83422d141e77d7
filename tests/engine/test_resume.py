"""Exact resume after kill -9: a killed and re-run training ends with the same weights, bit for
bit, as an uninterrupted one (CPU, same seed, DataLoader workers and augmentation included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from reid_pipeline.engine import load_checkpoint

SCRIPT = Path(__file__).with_name("fit_script.py")
ITERS = 4  # 32 images, batch 8


def _cmd(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--ckpt", str(ckpt), "--out", str(out), *extra]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_rerun_gives_identical_weights(tmp_path: Path) -> None:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    run = {"env": env, "capture_output": True, "text": True, "timeout": 300}
    reference = subprocess.Popen(  # uninterrupted run, side by side with the killed one
        _cmd(tmp_path / "ref", tmp_path / "ref.pt"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kill_at = 2 * ITERS + 2  # the 2nd iteration of the 3rd epoch, after 2 checkpoints
        killed = subprocess.run(
            _cmd(tmp_path / "run", tmp_path / "run.pt", "--kill-at", str(kill_at)),
            check=False,
            **run,
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert not (tmp_path / "run.pt").exists()
        assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2
        assert not [p for p in (tmp_path / "run").iterdir() if p.suffix == ".tmp"]

        resumed = subprocess.run(_cmd(tmp_path / "run", tmp_path / "run.pt"), check=False, **run)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        _, err = reference.communicate(timeout=300)
        assert reference.returncode == 0, err[-3000:]
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()

    ref = torch.load(tmp_path / "ref.pt", weights_only=True)
    got = torch.load(tmp_path / "run.pt", weights_only=True)
    assert got["resumed_from"] == 2
    assert ref["resumed_from"] is None
    assert ref["final"].keys() == got["final"].keys()
    for key, value in ref["final"].items():
        assert torch.equal(value, got["final"][key]), key
    assert got["best_epoch"] == ref["best_epoch"]
    timing = ["images_per_s", "time_s"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "run" / "history.csv").drop(columns=timing),
        pd.read_csv(tmp_path / "ref" / "history.csv").drop(columns=timing),
    )
    ref_best = load_checkpoint(tmp_path / "ref" / "best.pt")["model"]
    got_best = load_checkpoint(tmp_path / "run" / "best.pt")["model"]
    assert all(torch.equal(ref_best[k], got_best[k]) for k in ref_best)
