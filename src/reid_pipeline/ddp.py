"""Multi-process (DDP) training of one ``train_<arch>`` pipeline under ``torchrun``.

    torchrun --nproc_per_node=2 -m reid_pipeline.ddp --pipeline train_dimn [--env ENV]
        [--params "dimn.cpu_synthetic.fit.epochs=4"]

Rank 0 runs the pipeline up to the validation hold-out (ingestion, parameter checks); every rank
then trains on its share of each epoch's batches (gloo on CPU, NCCL on GPUs, see
``reid_pipeline.engine.fit``); rank 0 saves the weights, history and summary through the catalog
and runs the rest of the pipeline (extraction, protocol, plots, metrics). The result is the same
set of catalog outputs as ``kedro run --pipeline=train_<arch>``.
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from reid_pipeline.data.records import frame_to_records
from reid_pipeline.experiment import train_from_records
from reid_pipeline.experiment.config import ExperimentConfig


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

    project = Path.cwd()
    bootstrap_project(project)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=2))

    def session() -> KedroSession:
        return KedroSession.create(project_path=project, env=args.env, runtime_params=params)

    if rank == 0:  # ingestion and hold-out once, before the other ranks read the manifests
        with session() as s:
            s.run(pipeline_names=[args.pipeline], to_nodes=[f"{arch}.split_validation"])
    if world > 1:
        dist.barrier()

    with session() as s:
        context = s.load_context()
        catalog = context.catalog
        config: ExperimentConfig = ExperimentConfig(**catalog.load(f"{arch}.experiment_config"))
    outcome = train_from_records(
        frame_to_records(catalog.load(f"{arch}.fit_manifest")),
        frame_to_records(catalog.load(f"{arch}.val_query_manifest")),
        frame_to_records(catalog.load(f"{arch}.val_gallery_manifest")),
        config,
        progress=rank == 0,
    )
    if rank == 0:
        catalog.save(f"{arch}.weights", outcome.state_dict)
        catalog.save(f"{arch}.model_spec", outcome.spec)
        catalog.save(f"{arch}.training_history", outcome.history)
        catalog.save(f"{arch}.training_summary", outcome.summary | {"processes": world})
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
