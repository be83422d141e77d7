"""Multi-process (DDP) training of one ``train_<arch>`` pipeline under ``torchrun``, on one
machine or several (docs/training.md, "Several GPUs or processes" and "Several machines").

    torchrun --standalone --nproc_per_node=2 -m reid_pipeline.ddp --pipeline train_dimn \
        [--env ENV] [--params "dimn.cpu_synthetic.fit.epochs=4"]
    torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 \
        --rdzv-id=JOB --max-restarts=1 -m reid_pipeline.ddp --pipeline train_dimn

Rank 0 holds the architecture's run lock and runs the pipeline up to the validation hold-out
(parameter checks, ingestion) while the other ranks wait for it; it then sends the three training
manifests to every rank, so all ranks train on the same records whether or not the nodes share
the project's data folder. Every rank calls the same ``train_model`` node function on its share
of each epoch's batches (gloo on CPU, NCCL on GPUs); rank 0 saves its outputs through the catalog
and runs the rest of the pipeline. The result is the same set of catalog outputs as
``kedro run --pipeline=train_<arch>``.

Elastic restarts (``--max-restarts``): torchrun starts the whole group again; rank 0 takes the
lock again (a stopped process holds no lock), the run keeps its run id (remembered in
``data/.locks/<arch>.torchrun.json`` under torchrun's rendezvous id), and training resumes from
the last checkpoint. Before training, every rank compares its copy of the checkpoint folder with
rank 0's and takes rank 0's files where they differ (nodes without shared storage).

With several processes every log line starts with ``rank R/W host |``. A failure on rank 0
before or after training (a held lock, a bad parameter, a full disk) is sent to the other ranks,
so every process ends with the same one-line message instead of waiting for rank 0 in a
collective.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch.distributed as dist

from reid_pipeline import runlock
from reid_pipeline.errors import ReidError

logger = logging.getLogger("reid_pipeline.ddp")
T = TypeVar("T")

#: the checkpoint files a resume reads (engine/fit.py); rank 0's copies are the reference
CHECKPOINT_FILES = ("last.pt", "best.pt", "history.csv")


def _parse_params(text: str) -> dict[str, Any]:
    """``"a.b=1,c=x"`` -> ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML scalars), or a
    YAML / JSON mapping (``'{a: {b: [1, 2]}}'``) for values that contain commas."""
    import yaml

    if text.lstrip().startswith("{"):
        mapping = yaml.safe_load(text)
        if not isinstance(mapping, dict):
            raise SystemExit(f"--params: expected a mapping, got {text!r}")
        return mapping
    out: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in item:
            raise SystemExit(f"--params: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def _backend(fit_device: str = "auto") -> str:
    """gloo when the recipe trains on the CPU (``fit.device: cpu``, also on a node with GPUs:
    NCCL cannot reduce CPU tensors); else NCCL when this process was given a GPU
    (``LOCAL_RANK`` < visible GPUs), gloo otherwise."""
    import torch

    if str(fit_device).split(":")[0] not in ("auto", "cuda"):
        return "gloo"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return "nccl" if torch.cuda.is_available() and local < torch.cuda.device_count() else "gloo"


def _init_process_group(
    timeout: datetime.timedelta = datetime.timedelta(hours=2), *, fit_device: str = "auto"
) -> None:
    """The default process group from torchrun's variables, on a store that is safe across
    elastic restarts (``engine.distributed.env_rendezvous``)."""
    from reid_pipeline.engine.distributed import env_rendezvous

    store, rank, world = env_rendezvous(timeout)
    backend, device = _backend(fit_device), None
    if backend == "nccl":  # this process's GPU before any collective (broadcast_object_list
        # stages its tensors on the current device: every rank on cuda:0 would be refused)
        import torch

        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend=backend,
        store=store,
        rank=rank,
        world_size=world,
        timeout=timeout,
        device_id=device,
    )


def rank_prefix(rank: int, world: int, host: str | None = None) -> str:
    """``rank R/W host |``: what every log line of a worker starts with (no square brackets:
    Kedro's Rich console handler would read ``[rank ...]`` as markup and drop it)."""
    return f"rank {rank}/{world} {host or socket.gethostname()} |"


def _prefix_log_records(prefix: str) -> None:
    """Start every log record's message with ``prefix`` (a record factory: each record once,
    whichever handlers Kedro's logging configuration installs later)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "reid_rank_prefix", None) == prefix:
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = f"{prefix} {record.msg}"
        return record

    factory.reid_rank_prefix = prefix  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _on_rank0(func: Callable[[], T], rank: int, world: int, what: str) -> T | None:
    """Run ``func`` on rank 0 and tell every rank how it went: an error on rank 0 is raised on
    every rank (the others would otherwise wait for rank 0 in the next collective until the
    process group's timeout). Returns ``func``'s result on rank 0, None elsewhere."""
    result: T | None = None
    failure: BaseException | None = None
    if rank == 0:
        try:
            result = func()
        except Exception as exc:  # sent to the other ranks, then raised here
            failure = exc
    if world > 1:
        box: list[Any] = [None if failure is None else _describe(failure)]
        dist.broadcast_object_list(box, src=0)
        if rank != 0 and box[0] is not None:
            raise ReidError(f"rank 0 failed while {what}: {box[0]}")
    if failure is not None:
        raise failure
    return result


def _describe(exc: BaseException) -> str:
    from reid_pipeline.cli import known_error

    known = known_error(exc)
    return str(known) if known is not None else f"{type(exc).__name__}: {exc}"


def _run_id_file(arch: str) -> Path:
    return Path.cwd() / runlock.LOCK_DIR / f"{arch}.torchrun.json"


def _launcher() -> dict[str, Any]:
    """Who launched this process: torchrun's rendezvous id, host and agent (parent) pid."""
    return {
        "torchrun_id": os.environ.get("TORCHELASTIC_RUN_ID", ""),
        "host": socket.gethostname(),
        "launcher_pid": os.getppid(),
    }


def _run_id(rank: int, world: int, arch: str) -> str:
    """One id for every rank of this run (rank 0's, broadcast) and for every restart of the
    group: ``REID_RUN_ID`` when set; else the id rank 0 recorded for the same torchrun
    rendezvous id when this is a restart of that launch (the same torchrun agent, or a restart
    count above 0: a healthy node's agent restarts its workers without counting); else the UTC
    time now."""
    run_id = os.environ.get("REID_RUN_ID", "")
    if not run_id and rank == 0:
        me = _launcher()
        restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
        if me["torchrun_id"]:
            try:
                saved = json.loads(_run_id_file(arch).read_text())
            except (OSError, ValueError):
                saved = {}
            if isinstance(saved, dict) and saved.get("torchrun_id") == me["torchrun_id"]:
                same_agent = (saved.get("host"), saved.get("launcher_pid")) == (
                    me["host"],
                    me["launcher_pid"],
                )
                if same_agent or restarts > 0:
                    run_id = str(saved.get("run_id") or "")
        if not run_id:
            run_id = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H.%M.%S.%fZ")
    if world > 1:
        box = [run_id if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        run_id = str(box[0])
    return run_id


def _remember_run_id(arch: str, run_id: str) -> None:
    """Record the run id under torchrun's rendezvous id and agent for a restarted group
    (rank 0)."""
    me = _launcher()
    if not me["torchrun_id"]:
        return
    from reid_pipeline.engine.checkpoint import atomic_write_text

    atomic_write_text(json.dumps(me | {"run_id": run_id}), _run_id_file(arch))


def _digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sync_checkpoints(folder: Path | None, rank: int, world: int) -> list[str]:
    """Make every rank's copy of the checkpoint files equal to rank 0's before training, so a
    resumed run continues from the same epoch on every rank. On storage every node shares, the
    digests agree and nothing moves; on a node with its own disk, rank 0's files are written
    there (atomically) and files rank 0 does not have are removed. Returns the names replaced
    on this rank."""
    if world <= 1 or folder is None:
        return []
    changed: list[str] = []
    for name in CHECKPOINT_FILES:
        path = folder / name
        mine = _digest(path)
        everyone: list[Any] = [None] * world
        dist.all_gather_object(everyone, mine)
        if all(d == everyone[0] for d in everyone):
            continue
        box: list[Any] = [path.read_bytes() if rank == 0 and everyone[0] is not None else None]
        dist.broadcast_object_list(box, src=0)
        if rank != 0 and mine != everyone[0]:
            if box[0] is None:
                path.unlink(missing_ok=True)
            else:
                from reid_pipeline.engine.checkpoint import _atomic_write

                data: bytes = box[0]
                _atomic_write(path, lambda fh, data=data: fh.write(data))
            changed.append(name)
    if changed:
        logger.info("checkpoint files %s taken from rank 0 (%s)", ", ".join(changed), folder)
    return changed


def check_images(manifests: list[Any], rank: int, world: int) -> None:
    """Every rank must read the images the manifests list, at the same absolute paths (rank 0
    wrote the manifests on its node). Raises ``DataError`` on every rank, naming the hosts and
    a missing file, when any rank cannot, instead of one rank failing in its loader while the
    others wait for it."""
    if world <= 1:
        return
    paths = sorted({str(p) for m in manifests for p in m["path"]})
    missing = [p for p in paths if not os.path.isfile(p)]
    mine = None
    if missing:
        mine = (
            f"rank {rank} on {socket.gethostname()}: {len(missing)} of {len(paths)} images "
            f"missing, e.g. {missing[0]}"
        )
    everyone: list[Any] = [None] * world
    dist.all_gather_object(everyone, mine)
    problems = [p for p in everyone if p]
    if problems:
        from reid_pipeline.errors import DataError

        raise DataError(
            f"{'; '.join(problems)}. Every node must see the data at the same absolute path as "
            "rank 0: shared storage, or the project cloned at the same path on every node and "
            "`dvc pull` run on each (docs/training.md, Several machines)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reid_pipeline.ddp", description=__doc__)
    parser.add_argument("--pipeline", required=True, help="train_<arch>, e.g. train_dimn")
    parser.add_argument("--env", default=None, help="Kedro environment (default: local)")
    parser.add_argument("--params", default="", help='runtime parameters "a.b=1,c=2"')
    args = parser.parse_args(argv)
    arch = args.pipeline.removeprefix("train_")
    params = _parse_params(args.params)

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from reid_pipeline.experiment.recipe import checkpoint_path
    from reid_pipeline.pipelines.train import nodes

    project = Path.cwd()
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        _prefix_log_records(rank_prefix(rank, world))
    bootstrap_project(project)

    def session() -> KedroSession:
        return KedroSession.create(project_path=project, env=args.env, runtime_params=params)

    # the recipe first: its fit.device decides the process group's backend
    with session() as s:
        context = s.load_context()
        catalog, p = context.catalog, context.params
    experiment = nodes.resolve(
        p[arch],
        p["datasets"],
        p["protocols"],
        p.get("recipe_override") or {},
        p.get("live_metrics_dir"),
        arch,
    )
    if world > 1 and not dist.is_initialized():
        _init_process_group(fit_device=experiment.recipe.fit.device)
    os.environ["REID_RUN_ID"] = run_id = _run_id(rank, world, arch)
    logger.info(
        "rank %d of %d (local rank %s, node %s, torchrun restart %s), run %s",
        rank,
        world,
        os.environ.get("LOCAL_RANK", "0"),
        os.environ.get("GROUP_RANK", "0"),
        os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"),
        run_id,
    )

    names = ("fit_manifest", "val_query_manifest", "val_gallery_manifest")

    def prepare() -> list[Any]:
        """The lock, ingestion and hold-out once, while the other ranks wait (rank 0)."""
        runlock.acquire(arch, run_id=run_id)
        _remember_run_id(arch, run_id)
        with session() as s:
            s.run(pipeline_names=[args.pipeline], to_nodes=[f"{arch}.split_validation"])
            catalog = s.load_context().catalog
        return [catalog.load(f"{arch}.{name}") for name in names]

    manifests = _on_rank0(prepare, rank, world, "preparing the run (lock, ingestion, hold-out)")
    if world > 1:  # every rank trains on rank 0's records, whatever its own disk holds
        box: list[Any] = [manifests]
        dist.broadcast_object_list(box, src=0)
        manifests = box[0]
    assert manifests is not None

    check_images(manifests, rank, world)
    folder = checkpoint_path(experiment.where, experiment.recipe.checkpoint_dir)
    sync_checkpoints(folder, rank, world)
    weights, spec, history, summary = nodes.train_model(*manifests, experiment, run_id)

    def save() -> None:
        catalog.save(f"{arch}.weights", weights)
        catalog.save(f"{arch}.model_spec", spec)
        catalog.save(f"{arch}.training_history", history)
        catalog.save(f"{arch}.training_summary", summary | {"processes": world})

    _on_rank0(save, rank, world, "saving the trained model")
    if world > 1:
        dist.destroy_process_group()
    if rank == 0:
        with session() as s:
            s.run(
                pipeline_names=[args.pipeline],
                from_nodes=[
                    f"{arch}.plot_training",
                    f"{arch}.extract_embeddings",
                    f"{arch}.extract_untrained_embeddings",
                ],
            )
        runlock.release(arch)
    return 0


def _entry() -> int:
    """``main`` with the command line's one-line report of known errors (``REID_TRACEBACK=1``
    shows the traceback). SIGTERM keeps Python's default (stop at once): torchrun stops a
    group's workers with it, and a worker blocked in a collective must not delay a restart."""
    from reid_pipeline.cli import known_error

    try:
        return main()
    except Exception as exc:
        known = known_error(exc)
        if known is None or os.environ.get("REID_TRACEBACK"):
            raise
        prefix = rank_prefix(
            int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        )
        print(f"{prefix} error: {known}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(_entry())
