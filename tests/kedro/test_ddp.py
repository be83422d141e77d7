"""`python -m reid_pipeline.ddp` under torchrun (gloo on CPU, the tiny synthetic data, BoT for two
epochs): the same catalog outputs as a single-process `kedro run`, on one "machine"
(`--standalone --nproc_per_node=2`) or two (two torchrun launchers meeting at a c10d rendezvous on
127.0.0.1, one process each), and an elastic restart after a worker is SIGKILLed mid-epoch.

The two-process standalone run is the reference: the two-node run and the restarted run have the
same world size, global batch and seed, so their weights must be the same bytes (CPU training is
deterministic, and so is gloo's all-reduce of two ranks' gradients)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from tests.kedro.conftest import _copy_project, tiny_params

ARCH = "bot"
PARAMS = tiny_params(ARCH, fit={"epochs": 2, "progress": False})
#: a generous bound on one torchrun run (about 1.5 minutes on 2 busy cores)
TIMEOUT_S = 300


@dataclass
class Run:
    project: Path
    logs: list[str]  # one per launcher

    def read(self, relative: str) -> Any:
        return json.loads((self.project / relative).read_text())

    @property
    def weights_sha256(self) -> str:
        data = (self.project / "data" / "06_models" / ARCH / "model.safetensors").read_bytes()
        return hashlib.sha256(data).hexdigest()

    @property
    def spec(self) -> dict[str, Any]:
        return self.read(f"data/06_models/{ARCH}/model_spec.json")

    @property
    def summary(self) -> dict[str, Any]:
        return self.read(f"data/06_models/{ARCH}/training_summary.json")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.read(f"data/08_reporting/{ARCH}/metrics.json")

    def losses(self) -> dict[str, list[float]]:
        """The per-epoch loss terms in the last checkpoint's history."""
        from reid_pipeline.engine.checkpoint import load_checkpoint

        state = load_checkpoint(
            self.project / "data" / "06_models" / ARCH / "checkpoints" / "last.pt"
        )
        return {k: list(v) for k, v in state["history"].items() if k.startswith("loss")}


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    env["COLUMNS"] = "400"  # Rich's console: one log record per line
    env.pop("REID_RUN_ID", None)
    return env


def _launch(
    project: Path, log: IO[str], *torchrun_args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *torchrun_args,
        "-m",
        "reid_pipeline.ddp",
        "--pipeline",
        f"train_{ARCH}",
        "--params",
        json.dumps(PARAMS),
    ]
    return subprocess.Popen(
        command,
        cwd=project,
        env=_env() | (env or {}),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    """Kill whatever is left of the launchers and their workers (no process may outlive a
    test)."""
    victims: list[psutil.Process] = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            victims += psutil.Process(proc.pid).children(recursive=True)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.kill()
    psutil.wait_procs(victims, timeout=10)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def _wait(procs: list[subprocess.Popen[str]], logs: list[Path]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    for proc in procs:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log.read_text()[-6000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_ids(log: str) -> list[tuple[int, int, str]]:
    """(rank, torchrun restart, run id) of every worker's start line."""
    found = re.findall(r"rank (\d+) of \d+ \(.*?torchrun restart (\d+)\), run (\S+)", log)
    return [(int(r), int(n), run) for r, n, run in found]


def _lock_free(project: Path) -> bool:
    path = project / "data" / ".locks" / f"{ARCH}.lock"
    with path.open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return True


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The reference: `torchrun --standalone --nproc_per_node=2`."""
    project = _copy_project(tmp_path_factory.mktemp("standalone") / "project")
    log_path = project / "torchrun.log"
    with log_path.open("w") as log:
        procs = [_launch(project, log, "--standalone", "--nproc_per_node=2")]
        try:
            _wait(procs, [log_path])
        finally:
            _stop(procs)
    return Run(project, [log_path.read_text()])


@pytest.mark.slow
def test_torchrun_two_processes_gloo(standalone: Run) -> None:
    assert standalone.summary["processes"] == 2
    assert standalone.summary["epochs"] == 2
    assert standalone.summary["resumed_from_epoch"] is None
    assert standalone.metrics["training"]["processes"] == 2
    assert 0.0 <= standalone.metrics["trained"]["mAP"] <= 1.0
    log = standalone.logs[0]
    # every worker says who it is, every log line of a worker carries its rank
    assert re.search(r"rank 0/2 \S+ \| rank 0 of 2 \(local rank 0", log)
    assert re.search(r"rank 1/2 \S+ \| rank 1 of 2 \(local rank 1", log)
    ids = _run_ids(log)
    assert sorted(r for r, _, _ in ids) == [0, 1]
    assert len({run for *_, run in ids}) == 1
    assert standalone.spec["run_id"] == ids[0][2]
    # only rank 0 runs Kedro nodes (ingestion before training, outputs after)
    nodes = [line for line in log.splitlines() if "Running node:" in line]
    assert nodes
    assert all("rank 0/2" in line for line in nodes)
    assert _lock_free(standalone.project)


def _kill_after_first_epoch(project: Path, procs: list[subprocess.Popen[str]], rank: int) -> None:
    """SIGKILL the worker of global rank ``rank`` once the first epoch's checkpoint exists,
    half a second into the second epoch."""
    last = project / "data" / "06_models" / ARCH / "checkpoints" / "last.pt"
    deadline = time.monotonic() + TIMEOUT_S
    while not last.is_file():
        assert all(p.poll() is None for p in procs), "a launcher ended before the checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after the first epoch"
        time.sleep(0.05)
    time.sleep(0.5)  # into the second epoch
    workers = [
        child
        for proc in procs
        for child in psutil.Process(proc.pid).children(recursive=True)
        if "reid_pipeline.ddp" in " ".join(child.cmdline())
    ]
    victims = [p for p in workers if p.environ().get("RANK") == str(rank)]
    assert len(workers) == 2
    assert len(victims) == 1
    victims[0].send_signal(signal.SIGKILL)


def _two_nodes(project: Path, *extra: str, kill_rank: int | None = None) -> Run:
    """Two torchrun launchers ("nodes") of one process each, c10d rendezvous on 127.0.0.1, as
    docs/slurm/* launch them (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1: a fresh store per
    restart)."""
    port = _free_port()
    common = [
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        f"--rdzv-id=test-{port}",
        "--local-addr=127.0.0.1",
        *extra,
    ]
    env = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    paths = [project / f"node{i}.log" for i in range(2)]
    procs: list[subprocess.Popen[str]] = []
    try:
        with paths[0].open("w") as log0, paths[1].open("w") as log1:
            procs.append(_launch(project, log0, *common, env=env))
            time.sleep(1.0)  # the first launcher hosts the rendezvous store
            procs.append(_launch(project, log1, *common, env=env))
            if kill_rank is not None:
                _kill_after_first_epoch(project, procs, kill_rank)
            _wait(procs, paths)
    finally:
        _stop(procs)
    return Run(project, [p.read_text() for p in paths])


@pytest.mark.slow
def test_two_nodes_match_one_node(standalone: Run, tmp_path_factory: pytest.TempPathFactory):
    """Two nodes of one process each: the same weights (bytes of model.safetensors), the same
    training curve and the same test metrics as the standalone two-process run."""
    project = _copy_project(tmp_path_factory.mktemp("two_nodes") / "project")
    run = _two_nodes(project)
    logs = "\n".join(run.logs)
    assert sorted(r for r, _, _ in _run_ids(logs)) == [0, 1]
    assert len({run_id for *_, run_id in _run_ids(logs)}) == 1
    rank0_log = next(log for log in run.logs if "rank 0 of 2" in log)
    other_log = next(log for log in run.logs if "rank 1 of 2" in log)
    assert "rank 0/2" not in other_log
    assert "rank 1/2" not in rank0_log
    # one rank prepares the data and writes the catalog outputs
    assert "Running node:" in rank0_log
    assert "Running node:" not in other_log

    assert run.summary["processes"] == 2
    assert run.weights_sha256 == standalone.weights_sha256
    assert run.spec["weights_sha256"] == standalone.spec["weights_sha256"]
    assert run.losses()
    assert run.losses() == standalone.losses()
    assert run.metrics["trained"] == standalone.metrics["trained"]
    assert run.metrics["untrained"] == standalone.metrics["untrained"]
    assert _lock_free(project)


@pytest.mark.slow
def test_two_nodes_elastic_restart(standalone: Run, tmp_path_factory: pytest.TempPathFactory):
    """Two nodes, `--max-restarts=1`, the second node's worker SIGKILLed in the second epoch:
    both nodes restart their workers (the healthy node's agent without counting a restart),
    the group keeps its run id, resumes from epoch 1 and ends with the standalone run's
    weights."""
    project = _copy_project(tmp_path_factory.mktemp("two_nodes_elastic") / "project")
    run = _two_nodes(project, "--max-restarts=1", kill_rank=1)
    ids = _run_ids("\n".join(run.logs))
    assert sorted(rank for rank, _, _ in ids) == [0, 0, 1, 1]  # every worker started twice
    assert len({run_id for *_, run_id in ids}) == 1
    assert run.spec["run_id"] == ids[0][2]
    assert re.search(r"resuming from \S+last\.pt: 1 of 2 epochs done", "\n".join(run.logs))
    assert run.summary["resumed_from_epoch"] == 1
    assert run.weights_sha256 == standalone.weights_sha256
    assert run.metrics["trained"] == standalone.metrics["trained"]
    assert _lock_free(project)


@pytest.mark.slow
def test_elastic_restart_resumes(standalone: Run, tmp_path_factory: pytest.TempPathFactory):
    """`--max-restarts=1`: rank 0 (the lock holder and checkpoint writer) is SIGKILLed during
    the second epoch; torchrun restarts the group, which keeps the run id, takes the lock again,
    resumes from the first epoch's checkpoint and ends with the uninterrupted run's weights."""
    project = _copy_project(tmp_path_factory.mktemp("elastic") / "project")
    log_path = project / "torchrun.log"
    procs: list[subprocess.Popen[str]] = []
    try:
        with log_path.open("w") as log:
            procs.append(
                _launch(project, log, "--standalone", "--nproc_per_node=2", "--max-restarts=1")
            )
            _kill_after_first_epoch(project, procs, 0)
            _wait(procs, [log_path])
    finally:
        _stop(procs)
    run = Run(project, [log_path.read_text()])
    ids = _run_ids(run.logs[0])
    # the group started twice, with one run id
    assert sorted((rank, restart) for rank, restart, _ in ids) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len({run_id for *_, run_id in ids}) == 1
    assert run.spec["run_id"] == ids[0][2] == run.summary["run_id"]
    assert re.search(r"resuming from \S+last\.pt: 1 of 2 epochs done", run.logs[0])
    assert run.summary["resumed_from_epoch"] == 1
    assert run.weights_sha256 == standalone.weights_sha256
    assert run.metrics["trained"] == standalone.metrics["trained"]
    assert _lock_free(project)


def _two_ranks(rank: int, init: str, folders: list[str], result_dir: str) -> None:
    """One of two gloo processes: sync_checkpoints with a folder per rank (nodes that share no
    storage), then a failure on rank 0 as every rank sees it."""
    import pandas as pd
    import torch.distributed as dist

    from reid_pipeline import ddp
    from reid_pipeline.errors import DataError, ReidError, RunLockedError

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        changed = ddp.sync_checkpoints(Path(folders[rank]), rank, 2)
        try:

            def fail() -> None:
                raise RunLockedError("run X (pid 1) is writing the bot outputs")

            ddp._on_rank0(fail, rank, 2, "preparing the run")
            error = ""
        except ReidError as exc:
            error = f"{type(exc).__name__}: {exc}"
        outcome = ddp._on_rank0(lambda: "saved", rank, 2, "saving")
        images = [pd.DataFrame({"path": [folders[0] + "/last.pt"]})]
        ddp.check_images(images, rank, 2)  # every rank sees the file
        missing = ""
        try:
            # a file neither "node" has
            ddp.check_images([pd.DataFrame({"path": [folders[rank] + "/last.pt.gone"]})], rank, 2)
        except DataError as exc:
            missing = str(exc)
        Path(result_dir, f"{rank}.json").write_text(
            json.dumps({"changed": changed, "error": error, "outcome": outcome, "missing": missing})
        )
    finally:
        dist.destroy_process_group()


def test_sync_checkpoints_and_rank0_failures(tmp_path: Path) -> None:
    """Rank 1's own copy of the checkpoint folder becomes rank 0's (a different last.pt is
    replaced, a best.pt rank 0 does not have is removed, equal files are left alone), and an
    error on rank 0 ends every rank with rank 0's message."""
    import torch.multiprocessing as mp

    folders = [tmp_path / "node0", tmp_path / "node1"]
    for folder in folders:
        folder.mkdir()
        (folder / "history.csv").write_text("epoch\n1\n")
    (folders[0] / "last.pt").write_bytes(b"epoch 1 of the run")
    (folders[1] / "last.pt").write_bytes(b"an older run")
    (folders[1] / "best.pt").write_bytes(b"an older run's best")
    before = (folders[1] / "history.csv").stat().st_mtime_ns
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_two_ranks, args=(init, [str(f) for f in folders], str(tmp_path)), nprocs=2)
    results = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert results[0]["changed"] == []
    assert results[1]["changed"] == ["last.pt", "best.pt"]
    assert (folders[1] / "last.pt").read_bytes() == b"epoch 1 of the run"
    assert not (folders[1] / "best.pt").exists()
    assert (folders[1] / "history.csv").stat().st_mtime_ns == before
    assert (folders[0] / "last.pt").read_bytes() == b"epoch 1 of the run"
    assert results[0]["error"] == "RunLockedError: run X (pid 1) is writing the bot outputs"
    assert results[1]["error"] == (
        "ReidError: rank 0 failed while preparing the run: run X (pid 1) is writing the bot outputs"
    )
    assert [r["outcome"] for r in results] == ["saved", None]
    for r in results:  # both ranks end with the same message, naming both ranks' missing files
        assert r["missing"] == results[0]["missing"]
        assert f"rank 1 on {socket.gethostname()}: 1 of 1 images missing" in r["missing"]
        assert "node1/last.pt.gone" in r["missing"]
        assert "rank 0 on" in r["missing"]


RACE = """
import os, sys, time
import torch.distributed as dist
from reid_pipeline import ddp

restart = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
rank = int(os.environ["RANK"])
if restart == 1 and rank == 0:
    time.sleep(3)  # rank 1 reads the store first, where only the killed group's keys are
ddp._init_process_group()
dist.barrier()
print(f"rank {rank} restart {restart} connected", flush=True)
if restart == 0 and rank == 1:
    os._exit(1)
dist.barrier()
dist.destroy_process_group()
"""


def test_restarted_group_connects(tmp_path: Path) -> None:
    """After a restart under --standalone the new processes find each other, even when one of
    them reads the rendezvous store before the other has published its address (with a plain
    `init_process_group` the restarted group hangs or fails to connect on the killed group's
    addresses: pytorch/pytorch#135712)."""
    script = tmp_path / "race.py"
    script.write_text(RACE)
    log_path = tmp_path / "race.log"
    with log_path.open("w") as log:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc_per_node=2",
                    "--max-restarts=1",
                    str(script),
                ],
                cwd=tmp_path,
                env=_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        ]
        try:
            procs[0].wait(timeout=120)
        finally:
            _stop(procs)
    text = log_path.read_text()
    assert procs[0].returncode == 0, text[-4000:]
    for rank in (0, 1):
        for restart in (0, 1):
            assert f"rank {rank} restart {restart} connected" in text
