"""What ``fit`` does to the training loader: per-epoch seeding and DDP sharding.

- ``start_epoch(loader, seed=, epoch=)`` re-seeds everything an epoch draws from (global RNGs,
  the loader's generator, a dataset's private RNG when it runs in the main process) and calls
  ``set_epoch(epoch)`` on the dataset, on every sampler in the loader and on the loader itself
  (``data.torch_dataset.ReidLoader``), each where it exists, in that order.
- ``prepare_train_loader`` returns the loader ``fit`` iterates: the caller's own one, or a copy
  (same dataset, workers, collate, pinning) whose batch sampler is sharded across DDP ranks and/or
  whose workers re-seed the dataset's private RNG (``seed.WorkerInit``).

Sharding (ours): a sampler that is already distributed-aware (has ``num_replicas`` and ``rank``,
like ``DistributedSampler`` or ``data.samplers.PKSampler``) and was built for this process is kept
as it is (one built with ``num_replicas=1`` counts as unaware). Any other batch sampler is
wrapped by ``ShardedBatchSampler``: every rank draws the same batch sequence (same per-epoch
seed) and keeps the batches ``i`` with ``i % world_size == rank``, so ranks see disjoint
batches of the loader's batch size (per process) and the same number of iterations. The sampler
must be deterministic given the global seed and epoch (the project's identity samplers and
``RandomSampler`` are).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from reid_pipeline.engine.distributed import DistContext
from reid_pipeline.engine.seed import WorkerInit, epoch_seed, has_private_rng, reseed_dataset
from reid_pipeline.engine.seed import seed_everything as _seed_everything

logger = logging.getLogger(__name__)


class ShardedBatchSampler(Sampler[list[int]]):
    """Keep every ``num_replicas``-th batch of ``batch_sampler``, starting at ``rank``.

    ``start_epoch`` reaches the wrapped sampler's ``set_epoch`` through the ``batch_sampler``
    attribute.
    """

    def __init__(self, batch_sampler: Iterable[list[int]], *, num_replicas: int, rank: int) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.batch_sampler = batch_sampler
        self.num_replicas = num_replicas
        self.rank = rank

    def __len__(self) -> int:
        return len(self.batch_sampler) // self.num_replicas  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[list[int]]:
        keep = len(self) * self.num_replicas  # equal iteration counts on every rank
        for i, batch in enumerate(self.batch_sampler):
            if i >= keep:
                break
            if i % self.num_replicas == self.rank:
                yield batch


def _samplers_of(root: Any) -> list[Any]:
    """Every distinct object in the ``sampler`` / ``batch_sampler`` chain that has ``set_epoch``."""
    found: list[Any] = []
    stack, seen = [root], set()
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if callable(getattr(obj, "set_epoch", None)) and obj is not root:
            found.append(obj)
        stack += [getattr(obj, "sampler", None), getattr(obj, "batch_sampler", None)]
    return found


def _distributed_aware(loader: DataLoader) -> Any:
    for obj in (loader.batch_sampler, loader.sampler):
        if hasattr(obj, "num_replicas") and hasattr(obj, "rank"):
            return obj
    return None


def _rebuild(loader: DataLoader, *, batch_sampler: Any, worker_init_fn: Any) -> DataLoader:
    """A DataLoader like ``loader`` with another batch sampler / worker init function."""
    skip = {
        "self",
        "dataset",
        "batch_size",
        "shuffle",
        "sampler",
        "batch_sampler",
        "drop_last",
        "worker_init_fn",
    }
    kwargs = {
        name: getattr(loader, name)
        for name in inspect.signature(DataLoader.__init__).parameters
        if name not in skip and hasattr(loader, name)
    }
    if loader.num_workers == 0:
        kwargs.pop("prefetch_factor", None)
        kwargs.pop("persistent_workers", None)
        kwargs.pop("multiprocessing_context", None)
    return DataLoader(
        loader.dataset, batch_sampler=batch_sampler, worker_init_fn=worker_init_fn, **kwargs
    )


def prepare_train_loader(loader: Iterable[Any], *, ctx: DistContext) -> Iterable[Any]:
    """The loader ``fit`` iterates (see the module docstring)."""
    if not isinstance(loader, DataLoader):
        if ctx.enabled:
            raise TypeError(
                f"distributed training needs a torch DataLoader to shard, got "
                f"{type(loader).__name__}"
            )
        return loader
    if (
        loader.num_workers > 0
        and loader.persistent_workers
        and not callable(getattr(loader.dataset, "set_epoch", None))
    ):
        logger.warning(
            "train loader has persistent_workers=True: worker RNG streams then carry over "
            "between epochs, so a resumed run's augmentation differs from an uninterrupted one"
        )
    batch_sampler: Any = loader.batch_sampler
    reshard = False
    if ctx.enabled:
        aware = _distributed_aware(loader)
        if aware is not None and aware.num_replicas != 1:
            if (aware.num_replicas, aware.rank) != (ctx.world_size, ctx.rank):
                raise ValueError(
                    f"train loader's {type(aware).__name__} was built for num_replicas="
                    f"{aware.num_replicas}, rank={aware.rank}, but this process is rank "
                    f"{ctx.rank} of {ctx.world_size}"
                )
        elif batch_sampler is None:
            raise TypeError("distributed training needs a loader with a batch size or sampler")
        else:
            batch_sampler = ShardedBatchSampler(
                batch_sampler, num_replicas=ctx.world_size, rank=ctx.rank
            )
            reshard = True
    rewire_workers = loader.num_workers > 0 and has_private_rng(loader.dataset)
    if not reshard and not rewire_workers:
        return loader
    if batch_sampler is None:  # iterable-style dataset: nothing to shard
        return loader
    if type(loader) is not DataLoader:
        raise TypeError(
            f"cannot re-wire a {type(loader).__name__} for DDP sharding / worker seeding: build "
            "its sampler for this process (num_replicas=reid_pipeline.engine.get_world_size(), "
            "rank=reid_pipeline.engine.get_rank()), or pass a plain torch DataLoader"
        )
    init = loader.worker_init_fn
    if rewire_workers and not isinstance(init, WorkerInit):
        init = WorkerInit(init)
    return _rebuild(loader, batch_sampler=batch_sampler, worker_init_fn=init)


def start_epoch(loader: Iterable[Any], *, seed: int, epoch: int) -> int:
    """Re-seed for ``epoch`` and tell the samplers; returns the epoch seed."""
    s = epoch_seed(seed, epoch)
    _seed_everything(s)
    if isinstance(loader, DataLoader):
        if isinstance(loader.generator, torch.Generator):
            loader.generator.manual_seed(s)
        if loader.num_workers == 0:
            reseed_dataset(loader.dataset, s)
        if callable(getattr(loader.dataset, "set_epoch", None)):
            loader.dataset.set_epoch(epoch)
    for sampler in _samplers_of(_Root(loader)):
        sampler.set_epoch(epoch)
    if callable(getattr(loader, "set_epoch", None)):  # e.g. data.torch_dataset.ReidLoader
        loader.set_epoch(epoch)
    return s


class _Root:
    """Makes the loader itself the start of the sampler chain (its samplers are children)."""

    def __init__(self, loader: Any) -> None:
        self.sampler = getattr(loader, "sampler", None)
        self.batch_sampler = getattr(loader, "batch_sampler", None)
