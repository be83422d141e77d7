"""Seeding: whole-process seeds, per-epoch seeds and DataLoader worker seeds.

Exact resume without saving RNG state objects (ours): every epoch starts by re-seeding
``random``, ``numpy`` and ``torch`` from ``epoch_seed(seed, epoch)``, so what an epoch draws
(sampler order, DataLoader worker seeds, augmentation, dropout) depends only on ``(seed, epoch)``
and on the weights, never on how many epochs ran before in this process.

DataLoader workers: PyTorch seeds ``random``/``numpy``/``torch`` of worker ``w`` with
``base_seed + w``, where ``base_seed`` is drawn from the global torch generator (or the loader's
own generator, which ``fit`` re-seeds too) when the epoch's iterator is created; after the
per-epoch re-seed that is a function of ``(seed, epoch, w)``. Libraries that keep their own RNG
(albumentations' ``Compose`` does) are re-seeded through ``reseed_dataset``: a dataset exposing
``reseed(seed)``, or a ``transform`` / ``transforms`` attribute with ``set_random_seed(seed)``.
Under DDP the model's own draws are re-seeded per rank (``loop.py``). See docs/training.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

_MAX_SEED = 2**32


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    seed = int(seed) % _MAX_SEED
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is what we re-seed
    torch.manual_seed(seed)  # also seeds every CUDA device


def derive_seed(seed: int, *keys: int) -> int:
    """A well-mixed 32-bit seed from ``seed`` and integer ``keys`` (e.g. the epoch).

    Uses NumPy's ``SeedSequence`` so nearby inputs give unrelated streams.
    """
    entropy = [int(seed) % _MAX_SEED, *(int(k) % _MAX_SEED for k in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed every process uses at the start of epoch ``epoch`` (0-based)."""
    return derive_seed(seed, 0x5EED, epoch)


def reseed_dataset(dataset: Any, seed: int) -> bool:
    """Re-seed a dataset's private RNG (see the module docstring); returns whether one was found."""
    hook = getattr(dataset, "reseed", None)
    if callable(hook):
        hook(int(seed) % _MAX_SEED)
        return True
    for name in ("transform", "transforms"):
        setter = getattr(getattr(dataset, name, None), "set_random_seed", None)
        if callable(setter):
            setter(int(seed) % _MAX_SEED)
            return True
    return False


def has_private_rng(dataset: Any) -> bool:
    """Whether ``reseed_dataset`` would find something to re-seed on ``dataset``."""
    if callable(getattr(dataset, "reseed", None)):
        return True
    return any(
        callable(getattr(getattr(dataset, name, None), "set_random_seed", None))
        for name in ("transform", "transforms")
    )


class WorkerInit:
    """``worker_init_fn`` that re-seeds the worker's dataset copy, then calls the user's function.

    Picklable (a module-level class), so it works with every multiprocessing start method. The
    worker's torch seed (``base_seed + worker_id``, set by PyTorch before this runs) is the seed.
    """

    def __init__(self, user_fn: Callable[[int], None] | None = None) -> None:
        self.user_fn = user_fn

    def __call__(self, worker_id: int) -> None:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            reseed_dataset(info.dataset, torch.initial_seed() % _MAX_SEED)
        if self.user_fn is not None:
            self.user_fn(worker_id)
