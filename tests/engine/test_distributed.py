"""DDP with gloo on CPU through torchrun, and the rank helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reid_pipeline.engine import get_rank, get_world_size, setup_distributed
from reid_pipeline.engine.distributed import DistContext, torchrun_env

SCRIPT = Path(__file__).with_name("ddp_script.py")


def test_rank_helpers_outside_torchrun(monkeypatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    assert not torchrun_env()
    assert (get_rank(), get_world_size()) == (0, 1)
    cpu = torch.device("cpu")
    assert setup_distributed(None, device=cpu) == DistContext()
    assert setup_distributed(False, device=cpu) == DistContext()
    with pytest.raises(RuntimeError, match="torchrun"):
        setup_distributed(True, device=cpu)
    env = {
        "RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29999",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert torchrun_env()
    assert (get_rank(), get_world_size()) == (1, 2)  # before any process group exists


def _torchrun(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(SCRIPT),
            "--out",
            str(out),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    proc = _torchrun(tmp_path, "--epochs", "2", "--lr-scaling", "linear")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    weights = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    # the unused-parameter probe reads one batch (4 images) before training
    assert [len(rep["indices"]) for rep in reports] == [4 + 32, 4 + 32]
    # disjoint shares: each epoch every rank reads 16 of the 32 images, none twice
    for epoch in range(2):
        shares = [set(rep["indices"][4 + 16 * epoch : 4 + 16 * (epoch + 1)]) for rep in reports]
        assert len(shares[0]) == len(shares[1]) == 16
        assert not shares[0] & shares[1]
        assert shares[0] | shares[1] == set(range(32))
    assert reports[0]["indices"][4:20] != reports[0]["indices"][20:]  # reshuffled per epoch

    # identical weights although each rank started from different random ones
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # losses averaged over ranks; validation on rank 0 only, broadcast to rank 1
    assert reports[0]["loss"] == reports[1]["loss"]
    assert [rep["validate_calls"] for rep in reports] == [2, 0]
    assert reports[0]["val_mAP"] == reports[1]["val_mAP"] == pytest.approx([0.1, 0.2])
    assert reports[0]["best_epoch"] == reports[1]["best_epoch"] == 2
    # lr_scaling linear: OPTIMIZER's lr 0.05 x 2 processes
    assert reports[0]["lr_default"] == reports[1]["lr_default"] == pytest.approx([0.1, 0.1])
    assert reports[0]["initialized_after"] is False  # fit tore down the group it created

    ckpt_dir = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["best.pt", "history.csv", "last.pt"]
    last = torch.load(ckpt_dir / "last.pt", weights_only=True)
    assert last["epoch"] == 2
    assert last["world_size"] == 2
    assert last["config"]["lr_scale"] == 2.0
    assert all(torch.equal(last["model"][k], weights[0][k]) for k in weights[0])


@pytest.mark.slow
def test_ddp_with_a_branch_no_loss_uses_and_rank_aware_model_seeds(tmp_path: Path) -> None:
    proc = _torchrun(tmp_path, "--epochs", "1", "--unused")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stderr
    assert "2 parameter(s) are in an output no loss uses (side.bias, side.weight)" in log
    assert (
        "2 parameter(s) get no gradient in this configuration (orphan.bias, orphan.weight)" in log
    )
    assert "find_unused_parameters=True" in log
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    weights = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert reports[0]["loss"] == reports[1]["loss"]
    assert all(rep["requires_grad_after"] for rep in reports)  # the side branch is given back
    # one probe forward + 4 iterations; the random draws inside the model differ between ranks
    # (seed + rank) while the sampler stayed global (disjoint shares)
    draws = [rep["draws"] for rep in reports]
    assert [len(d) for d in draws] == [5, 5]
    assert all(a != b for a, b in zip(draws[0][1:], draws[1][1:], strict=True))
    shares = [set(rep["indices"][4:]) for rep in reports]
    assert not shares[0] & shares[1]
    assert shares[0] | shares[1] == set(range(32))


def test_env_rendezvous_separates_restarts_on_a_shared_agent_store(monkeypatch) -> None:
    """Under one torchrun agent whose store outlives restarts, each restart's keys go under
    their own prefix (a restarted group never reads the killed processes' addresses); fit()'s
    ``setup_distributed`` uses the same rendezvous as ``python -m reid_pipeline.ddp``."""
    import datetime
    import socket

    from torch.distributed import TCPStore

    from reid_pipeline.engine.distributed import env_rendezvous

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    agent_store = TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False)
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "TORCHELASTIC_USE_AGENT_STORE": "True",
        "GROUP_WORLD_SIZE": "1",
        "TORCHELASTIC_RESTART_COUNT": "3",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    store, rank, world = env_rendezvous(datetime.timedelta(seconds=30))
    assert (rank, world) == (0, 1)
    store.set("address", "worker of restart 3")
    assert agent_store.get("reid_pipeline/restart_3/address") == b"worker of restart 3"
    assert not agent_store.check(["address"])
