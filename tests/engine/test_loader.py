"""DDP sharding of the training loader and per-epoch seeding."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from reid_pipeline.engine.distributed import DistContext
from reid_pipeline.engine.loader import ShardedBatchSampler, prepare_train_loader, start_epoch
from reid_pipeline.engine.seed import WorkerInit

from .tiny import TinyDataset, make_loader


def _indices(loader) -> list[list[int]]:
    return [b["index"].tolist() for b in loader]


def test_sharded_batch_sampler_disjoint_equal_shares() -> None:
    batches = [[i, i + 100] for i in range(7)]
    shares = [list(ShardedBatchSampler(batches, num_replicas=3, rank=r)) for r in range(3)]
    assert shares == [[[0, 100], [3, 103]], [[1, 101], [4, 104]], [[2, 102], [5, 105]]]
    assert len(ShardedBatchSampler(batches, num_replicas=3, rank=0)) == 2
    with pytest.raises(ValueError, match="rank"):
        ShardedBatchSampler(batches, num_replicas=2, rank=2)


def test_prepare_shards_plain_loader_per_rank() -> None:
    ds = TinyDataset(32, augment=False)
    seen = []
    for rank in range(2):
        ctx = DistContext(enabled=True, rank=rank, world_size=2)
        loader = prepare_train_loader(make_loader(ds, batch_size=4), ctx=ctx)
        assert len(loader) == 4
        start_epoch(loader, seed=3, epoch=1)
        seen.append(_indices(loader))
    flat = [{i for batch in s for i in batch} for s in seen]
    assert not flat[0] & flat[1]
    assert len(flat[0] | flat[1]) == 32


def test_prepare_keeps_single_process_loader_and_aware_sampler() -> None:
    ds = TinyDataset(16, augment=False)
    loader = make_loader(ds)
    assert prepare_train_loader(loader, ctx=DistContext()) is loader
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True)
    aware = DataLoader(ds, batch_size=4, sampler=sampler)
    assert prepare_train_loader(aware, ctx=DistContext(True, 1, 2)) is aware
    with pytest.raises(ValueError, match=r"num_replicas=2, rank=1.*rank 0 of 2"):
        prepare_train_loader(aware, ctx=DistContext(True, 0, 2))
    with pytest.raises(TypeError, match="DataLoader"):
        prepare_train_loader([{"images": 1}], ctx=DistContext(True, 0, 2))


def test_prepare_wires_worker_reseeding_only_when_needed() -> None:
    ds = TinyDataset(16)
    plain = make_loader(ds, num_workers=0)
    assert prepare_train_loader(plain, ctx=DistContext()) is plain
    workers = make_loader(ds, num_workers=1)
    rebuilt = prepare_train_loader(workers, ctx=DistContext())
    assert rebuilt is not workers
    assert isinstance(rebuilt.worker_init_fn, WorkerInit)
    assert rebuilt.dataset is ds
    assert rebuilt.num_workers == 1
    assert len(rebuilt) == len(workers)


class _EpochSampler(torch.utils.data.Sampler):
    def __init__(self, n: int) -> None:
        self.n, self.epochs = n, []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


def test_start_epoch_is_a_function_of_seed_and_epoch() -> None:
    ds = TinyDataset(16)
    sampler = _EpochSampler(16)
    loader = DataLoader(ds, batch_size=4, sampler=sampler)
    start_epoch(loader, seed=1, epoch=4)
    assert sampler.epochs == [4]
    first = [b["images"] for b in loader]
    torch.rand(5)  # whatever ran in between does not matter
    ds.private.random()
    start_epoch(loader, seed=1, epoch=4)
    again = [b["images"] for b in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    start_epoch(loader, seed=1, epoch=5)
    other = [b["images"] for b in loader]
    assert not torch.equal(first[0], other[0])
