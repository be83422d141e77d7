"""Distributed data-parallel set-up: torchrun detection, process group, rank helpers.

``torchrun --nproc_per_node=N script.py`` (or ``python -m torch.distributed.run``) sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; ``setup_distributed`` reads
them and initialises the default process group with NCCL on CUDA devices and gloo on CPU. A group
initialised by the caller is reused and left alone by ``teardown_distributed``.

``get_rank()`` / ``get_world_size()`` already answer from torchrun's variables before the group
exists, so a pipeline can build its distributed-aware samplers
(``num_replicas=get_world_size(), rank=get_rank()``) and then call ``fit``. See docs/training.md.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``enabled`` False means a plain single-process run."""

    enabled: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # True when setup_distributed initialised the group

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torchrun_env() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return all(v in os.environ for v in _TORCHRUN_VARS) and int(os.environ["WORLD_SIZE"]) > 1


def env_rendezvous(timeout: datetime.timedelta) -> tuple[Any, int, int]:
    """``(store, rank, world_size)`` from torchrun's variables, safe across elastic restarts.

    By default torchrun's agents keep one store for the rendezvous and every restart of the
    group, and the workers' process-group keys are not separated by restart: the processes of a
    restarted group can read the addresses the killed processes published and fail to connect
    ("Gloo connectFullMesh failed ... Connection refused", pytorch/pytorch#135712) or, with
    NCCL, read a stale unique id. With one agent (``--standalone``, one node) its restart count
    is the same for every worker, and the keys go under a prefix per restart. Several agents
    count restarts each on its own (a healthy node's agent restarts its workers without
    counting), so there the fix is torchrun's own ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (a
    fresh store per restart, set in docs/slurm/*); without it rank 0 warns when restarts are
    allowed."""
    store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
    shared = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    agents = int(os.environ.get("GROUP_WORLD_SIZE", "1") or 1)
    if shared and agents == 1:
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = dist.PrefixStore(f"reid_pipeline/restart_{restart}", store)
    elif shared and int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0) > 0 and rank == 0:
        logger.warning(
            "elastic restarts across %d nodes need TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in the "
            "environment of every torchrun (a restarted group may otherwise fail to connect); "
            "see docs/training.md, Several machines",
            agents,
        )
    return store, rank, world


def setup_distributed(
    distributed: bool | None,
    *,
    device: torch.device,
    backend: str = "auto",
    timeout_s: float = 1800.0,
) -> DistContext:
    """Initialise (or join) the default process group.

    ``distributed``: ``None`` = auto (on when torchrun started several processes or a group is
    already initialised), ``True`` = required (error when neither is the case), ``False`` = off.
    ``backend``: ``"auto"`` = ``nccl`` for CUDA devices, ``gloo`` otherwise.
    """
    if distributed is False:
        return DistContext()
    already = dist.is_available() and dist.is_initialized()
    if not already and not torchrun_env():
        if distributed:
            raise RuntimeError(
                "distributed=True but this process was not started by torchrun (missing or "
                f"single-process {list(_TORCHRUN_VARS)}); launch with "
                "`torchrun --nproc_per_node=N ...`"
            )
        return DistContext()
    if not dist.is_available():
        raise RuntimeError("distributed training requested but torch.distributed is unavailable")
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend: expected 'auto', 'nccl' or 'gloo', got {backend!r}")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not already:
        timeout = datetime.timedelta(seconds=timeout_s)
        store, rank, world = env_rendezvous(timeout)  # restart-safe (see env_rendezvous)
        dist.init_process_group(
            backend=backend,
            store=store,
            rank=rank,
            world_size=world,
            timeout=timeout,
            device_id=device if backend == "nccl" else None,
        )
    return DistContext(
        enabled=True,
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        backend=dist.get_backend(),
        owns_group=not already,
    )


def teardown_distributed(ctx: DistContext) -> None:
    """Destroy the process group if ``setup_distributed`` created it."""
    if ctx.enabled and ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def get_rank() -> int:
    """Rank of this process: the default group's, else torchrun's ``RANK`` (so loaders and
    samplers can be built for DDP before ``fit`` initialises the group), else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ["RANK"]) if torchrun_env() else 0


def get_world_size() -> int:
    """Number of processes: the default group's, else torchrun's ``WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if torchrun_env() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (in place; identity when not distributed). NaN/inf on any rank
    makes the result non-finite on every rank, so all ranks stop together."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= ctx.world_size
    return tensor


def average_gradients(params: list[torch.nn.Parameter], ctx: DistContext) -> None:
    """All-reduce (mean) the gradients of parameters DDP does not manage (criterion centres)."""
    if not ctx.enabled:
        return
    for p in params:
        if p.grad is not None:
            all_reduce_mean(p.grad, ctx)


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext, *, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts them at the start of each forward, so after the last step each rank still
    holds the statistics of its own last batch; ``fit`` calls this at every epoch end so that
    checkpoints, validation and the returned weights are identical on all ranks.
    """
    if not ctx.enabled:
        return
    for buf in module.buffers():
        dist.broadcast(buf, src=src)


def broadcast_object(obj: Any, ctx: DistContext, *, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable plain data)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_object(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (picklable plain data), in rank order, on every rank."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
