"""Seeding helpers: global seeds, per-epoch seeds, private dataset RNGs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from reid_pipeline.engine.seed import (
    WorkerInit,
    derive_seed,
    epoch_seed,
    has_private_rng,
    reseed_dataset,
    seed_everything,
)

from .tiny import TinyDataset


def _draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))  # noqa: NPY002


def test_seed_everything_reproduces_all_three_generators() -> None:
    seed_everything(7)
    first = _draw()
    seed_everything(7)
    assert _draw() == first
    seed_everything(8)
    assert _draw() != first
    with pytest.raises(ValueError, match="seed"):
        seed_everything("7")  # type: ignore[arg-type]


def test_derive_seed_is_pinned_and_separates_epochs() -> None:
    # pinned values: a change to the derivation would silently break bit-identical resumes of
    # checkpoints written before it
    assert derive_seed(0, 1) == 3964924996
    assert epoch_seed(0, 0) == 703397753
    assert epoch_seed(3, 7) == 1623525131
    seeds = {epoch_seed(s, e) for s in range(3) for e in range(50)}
    assert len(seeds) == 150  # no collisions such as seed + epoch would give
    assert all(0 <= s < 2**32 for s in seeds)


class _WithTransform:
    def __init__(self) -> None:
        import albumentations as A

        self.transform = A.Compose([A.HorizontalFlip(p=0.5)])


def test_reseed_dataset_hooks() -> None:
    ds = TinyDataset(4)
    assert has_private_rng(ds)
    assert reseed_dataset(ds, 5)
    a = [ds.private.random() for _ in range(3)]
    reseed_dataset(ds, 5)
    assert [ds.private.random() for _ in range(3)] == a
    assert not reseed_dataset(object(), 5)
    assert not has_private_rng(object())


def test_reseed_dataset_reaches_albumentations_compose() -> None:
    holder = _WithTransform()
    image = np.arange(2 * 8 * 3, dtype=np.uint8).reshape(2, 8, 3)
    assert has_private_rng(holder)

    def flips() -> list[bool]:
        return [
            not np.array_equal(holder.transform(image=image)["image"], image) for _ in range(16)
        ]

    reseed_dataset(holder, 11)
    first = flips()
    reseed_dataset(holder, 11)
    assert flips() == first
    assert any(first)
    assert not all(first)


def test_worker_init_calls_user_function_outside_workers() -> None:
    calls: list[int] = []
    WorkerInit(calls.append)(3)
    assert calls == [3]
