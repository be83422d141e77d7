"""Fault injection: every way a run used to end silently wrong, kept from coming back
(issue "never a silently wrong result"). Engine-level cases (a stale or truncated checkpoint, a
full disk while checkpointing) are in tests/engine; damaged images and synthetic-option
changes in tests/data; bad parameters in tests/experiment/test_recipe.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from reid_pipeline import runlock
from reid_pipeline.cli import guarded
from reid_pipeline.errors import ConfigError, RunLockedError, WeightsError
from reid_pipeline.experiment.run import rebuild_model
from reid_pipeline.io.digest import state_dict_sha256
from tests.kedro.conftest import tiny_params


def _spec() -> tuple[dict, dict]:
    spec = {
        "name": "bot",
        "num_classes": 3,
        "kwargs": {"backbone": "resnet18", "pretrained": False},
        "seed": 0,
        "arch": "bot",
    }
    state = rebuild_model(spec, None).state_dict()
    return spec | {"weights_sha256": state_dict_sha256(state)}, state


def test_damaged_weights_are_refused_with_a_message() -> None:
    spec, state = _spec()
    rebuild_model(spec, state)  # intact: loads
    damaged = {k: v.clone() for k, v in state.items()}
    key = next(k for k in damaged if damaged[k].is_floating_point() and damaged[k].numel() > 1000)
    flat = damaged[key].view(-1).view(torch.uint8)
    flat[:4000] ^= 0xFF  # 4,000 flipped bytes, the size of the damage that loaded silently
    with pytest.raises(WeightsError, match=r"do not match the sha256 in model_spec\.json"):
        rebuild_model(spec, damaged)


def _hold(arch: str, root: Path) -> subprocess.Popen:
    """Another process holding ``arch``'s run lock (the lock is re-entrant within a process)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, time
                from pathlib import Path
                from reid_pipeline import runlock
                runlock.acquire(sys.argv[1], run_id="first-run", root=Path(sys.argv[2]))
                print("held", flush=True)
                time.sleep(600)
                """
            ),
            arch,
            str(root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_of_one_architecture_is_refused(tmp_path: Path) -> None:
    holder = _hold("bot", tmp_path)
    try:
        with pytest.raises(RunLockedError, match=r"run first-run \(pid \d+.*bot outputs"):
            runlock.acquire("bot", root=tmp_path)
        runlock.acquire("dimn", root=tmp_path)  # another architecture is free
        runlock.release("dimn", root=tmp_path)
        holder.kill()  # a killed run leaves its lock file, but never its lock
        holder.wait(timeout=10)
        assert (tmp_path / "data" / ".locks" / "bot.lock").is_file()
        runlock.acquire("bot", root=tmp_path)
        runlock.release("bot", root=tmp_path)
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_the_pipeline_refuses_to_start_while_another_run_holds_the_lock(
    kedro_project: Path, run_pipeline
) -> None:
    holder = _hold("dimn", kedro_project)
    try:
        with pytest.raises(RunLockedError, match=r"first-run .*dimn outputs"):
            run_pipeline("train_dimn", tiny_params("dimn"))
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert not (kedro_project / "data" / "05_model_input" / "dimn").exists()


def test_known_errors_are_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> None:
        try:
            raise ConfigError("bot.cpu_synthetic.optimizer.lr: expected a number")
        except ConfigError as exc:  # wrapped, as Kedro wraps dataset errors
            raise RuntimeError("Failed while saving data") from exc

    with pytest.raises(SystemExit) as exit_info:
        guarded(bad)()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: bot.cpu_synthetic.optimizer.lr: expected a number"


def test_a_full_disk_reads_as_a_full_disk(capsys: pytest.CaptureFixture[str]) -> None:
    def full() -> None:
        raise RuntimeError("unexpected pos 86007360 vs 86007248") from OSError(
            28, "No space left on device"
        )

    with pytest.raises(SystemExit):
        guarded(full)()
    assert "no space left on device" in capsys.readouterr().err.lower()


def test_sigterm_says_the_checkpoint_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    def killed() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    with pytest.raises(SystemExit) as exit_info:
        guarded(killed)()
    assert exit_info.value.code == 143
    err = capsys.readouterr().err
    assert "last.pt) is kept" in err
    assert "run the same command again to resume" in err


def test_unknown_errors_keep_their_traceback() -> None:
    def bug() -> None:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        guarded(bug)()


@pytest.mark.slow
def test_any_node_can_start_a_run_and_outputs_carry_run_ids(
    kedro_project: Path, run_pipeline
) -> None:
    from kedro.framework.session import KedroSession

    params = tiny_params("bot")
    run_pipeline("train_bot", params)
    models = kedro_project / "data" / "06_models" / "bot"
    spec = json.loads((models / "model_spec.json").read_text())
    summary = json.loads((models / "training_summary.json").read_text())
    metrics_path = kedro_project / "data" / "08_reporting" / "bot" / "metrics.json"
    first = json.loads(metrics_path.read_text())
    assert spec["run_id"]
    assert spec["run_id"] == summary["run_id"] == first["run_id"]
    assert first["model"]["run_id"] == spec["run_id"]
    for start in ("extract_embeddings", "evaluate_untrained", "summarise", "plot_cmc"):
        with KedroSession.create(project_path=kedro_project, runtime_params=params) as session:
            session.run(pipeline_names=["train_bot"], from_nodes=[f"bot.{start}"])
    rescored = json.loads(metrics_path.read_text())
    assert rescored["run_id"] != spec["run_id"]  # a new run scored ...
    assert rescored["model"]["run_id"] == spec["run_id"]  # ... the model the first one trained
    assert rescored["trained"] == first["trained"]


@pytest.mark.slow
def test_changed_settings_never_resume_an_old_checkpoint(kedro_project: Path, run_pipeline) -> None:
    run_pipeline("train_bot", tiny_params("bot"))
    models = kedro_project / "data" / "06_models" / "bot"
    changed = tiny_params("bot", input={"height": 128, "width": 64})
    changed["bot"]["cpu_synthetic"]["model"] = {"last_stride": 2}
    run_pipeline("train_bot", changed)
    summary = json.loads((models / "training_summary.json").read_text())
    assert summary["resumed_from_epoch"] is None  # trained afresh, not "1 of 1 epochs done"
    stale = list((models / "checkpoints" / "stale").glob("*/last.pt"))
    assert len(stale) == 1  # the old checkpoint is kept aside
    spec = json.loads((models / "model_spec.json").read_text())
    assert spec["input"] == {"height": 128, "width": 64}
    assert spec["kwargs"]["last_stride"] == 2
    # the same settings again resume from the matching checkpoint
    run_pipeline("train_bot", changed)
    summary = json.loads((models / "training_summary.json").read_text())
    assert summary["resumed_from_epoch"] == 1
