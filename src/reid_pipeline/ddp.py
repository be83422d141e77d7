"""Multi-process (DDP) training of one ``train_<arch>`` pipeline under ``torchrun``
(docs/training.md, "Several processes and machines").

    torchrun --nproc_per_node=2 -m reid_pipeline.ddp --pipeline train_dimn [--env ENV]
        [--params "dimn.cpu_synthetic.fit.epochs=4"]

Rank 0 runs the pipeline up to the validation hold-out (parameter checks, ingestion); every rank
then calls the same ``train_model`` node function on its share of each epoch's batches (gloo on
CPU, NCCL on GPUs); rank 0 saves its outputs through the catalog and runs the rest of the
pipeline. Rank 0 holds the architecture's run lock throughout, and every output carries one run
id. The result is the same set of catalog outputs as ``kedro run --pipeline=train_<arch>``.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
from pathlib import Path
from typing import Any

import torch.distributed as dist

from reid_pipeline import runlock

logger = logging.getLogger(__name__)


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


def _backend() -> str:
    """NCCL when this process was given a GPU (``LOCAL_RANK`` < visible GPUs), else gloo."""
    import torch

    local = int(os.environ.get("LOCAL_RANK", "0"))
    return "nccl" if torch.cuda.is_available() and local < torch.cuda.device_count() else "gloo"


def _run_id(rank: int, world: int) -> str:
    """One id for every rank and session of this run (rank 0's, broadcast)."""
    run_id = os.environ.get("REID_RUN_ID") or datetime.datetime.now(datetime.UTC).strftime(
        "%Y-%m-%dT%H.%M.%S.%fZ"
    )
    if world > 1:
        box = [run_id if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        run_id = str(box[0])
    return run_id


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

    from reid_pipeline.pipelines.train import nodes

    project = Path.cwd()
    bootstrap_project(project)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend=_backend(), timeout=datetime.timedelta(hours=2))
    os.environ["REID_RUN_ID"] = run_id = _run_id(rank, world)
    logging.getLogger("reid_pipeline").info("rank %d of %d, run %s", rank, world, run_id)

    def session() -> KedroSession:
        return KedroSession.create(project_path=project, env=args.env, runtime_params=params)

    if rank == 0:  # the lock, ingestion and hold-out once, before the other ranks read
        runlock.acquire(arch, run_id=run_id)
        with session() as s:
            s.run(pipeline_names=[args.pipeline], to_nodes=[f"{arch}.split_validation"])
    if world > 1:
        dist.barrier()

    with session() as s:
        context = s.load_context()
        catalog, p = context.catalog, context.params
    experiment = nodes.resolve(
        p[arch], p["datasets"], p["protocols"], p.get("recipe_override") or {}, arch
    )
    names = ("fit_manifest", "val_query_manifest", "val_gallery_manifest")
    manifests = [catalog.load(f"{arch}.{name}") for name in names]
    weights, spec, history, summary = nodes.train_model(*manifests, experiment, run_id)
    if rank == 0:
        catalog.save(f"{arch}.weights", weights)
        catalog.save(f"{arch}.model_spec", spec)
        catalog.save(f"{arch}.training_history", history)
        catalog.save(f"{arch}.training_summary", summary | {"processes": world})
    if world > 1:
        dist.barrier()
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


if __name__ == "__main__":
    raise SystemExit(main())
