"""Identity samplers for metric learning: P identities x K images per batch.

- ``PKSampler`` (the "RandomIdentitySampler" of BoT / torchreid / fast-reid): every batch holds
  ``p`` distinct identities with ``k`` images each, in batch order (identity by identity).
- ``CrossModalitySampler`` (AGW's visible-infrared ``IdentitySampler``): every batch holds ``p``
  identities, each with ``k`` visible then ``k`` infrared images (batch size ``2 * p * k``); only
  identities that have both modalities take part.

How an epoch is drawn (ours; the toolboxes' samplers have a random, only estimated length):

1. Each identity's images are cut into groups ("chunks") of ``k`` from a fresh random
   permutation: ``n // k`` chunks when it has ``n >= k`` images (the ``n mod k`` left over are
   skipped this epoch), one chunk when ``n < k``. Only then are images repeated: the chunk holds
   all ``n`` images plus ``k - n`` drawn from a second permutation, so no image repeats more than
   needed. Cross-modality: an identity gets ``max(n_vis, n_ir) // k`` chunks (``chunks="max"``:
   every image of both modalities is seen each epoch, the smaller side is cycled through fresh
   permutations) or ``min(...) // k`` (``chunks="min"``: nothing repeats unless ``n < k``), at
   least one.
   ``epoch="identities"`` (the official PMM / BFE ``RandomIdentitySampler``'s epoch, one pass over
   the identities): every identity gets exactly one chunk, so an epoch has
   ``floor(identities / p)`` batches (751 Market-1501 identities, p = 32: 23 batches of 128, the
   official loader's ``751 * 4 // 128`` with ``drop_last``); the identities left over are a
   random draw, as the official sampler's last partial batch is dropped.
2. The number of batches is the largest ``B`` with ``sum_i min(c_i, B) >= p * B`` (a batch needs
   ``p`` distinct identities): it depends only on the counts, so ``len()`` is exact and equal on
   every rank. Surplus chunks are dropped at random.
3. Batches are filled greedily: an identity with as many chunks left as batches left must be in
   the batch (that keeps the epoch feasible to the end); the other places go to identities drawn
   without replacement with probability proportional to their remaining chunks. Batch order and
   the identity order in a batch are shuffled.

Determinism: an epoch is a function of ``seed + epoch`` only (``set_epoch``). DDP: every rank draws
the same global epoch and takes batches ``rank, rank + R, rank + 2R, ...`` (``R = num_replicas``,
``B // R`` batches each): disjoint shares of equal length. The loader uses ``batch_size=p * k``
(``2 * p * k`` cross-modality) with ``drop_last=True``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import Sampler

#: what one epoch is: chunks of k over all images of every identity, or one chunk per identity
EPOCHS = ("images", "identities")


def chunk_counts(counts: np.ndarray, k: int, epoch: str) -> np.ndarray:
    """Chunks of ``k`` per identity in one epoch, given its image count (module docstring)."""
    if epoch == "identities":
        return np.ones(len(counts), dtype=np.int64)
    return np.maximum(1, counts // k)


class SamplerConfigError(ValueError):
    """A sampler parameter that cannot work with the data; the message names it."""


@dataclass(frozen=True)
class SamplerPlan:
    """What one epoch of an identity sampler looks like (per rank)."""

    num_identities: int  # identities that take part
    num_batches: int  # batches per epoch on each rank
    batch_size: int
    images_per_epoch: int  # per rank
    identities_with_repeats: int  # identities with fewer than k images (of some modality)
    identities_ignored: int  # cross-modality: identities lacking one modality


def _as_int_array(owner: str, name: str, values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise SamplerConfigError(
            f"{owner}: {name} must be a non-empty 1-D sequence of integers, got "
            f"{array.dtype} array of shape {array.shape}"
        )
    return array.astype(np.int64, copy=False)


def _check_int(owner: str, name: str, value: Any, minimum: int, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise SamplerConfigError(
            f"{owner}: {name} ({meaning}) must be an integer >= {minimum}, got {value!r}"
        )
    return int(value)


def _check_ddp(owner: str, num_replicas: Any, rank: Any) -> tuple[int, int]:
    replicas = _check_int(owner, "num_replicas", num_replicas, 1, "number of DDP processes")
    if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or not 0 <= rank < replicas:
        raise SamplerConfigError(
            f"{owner}: rank must be an integer in [0, num_replicas={replicas}), got {rank!r}"
        )
    return replicas, int(rank)


def max_batches(counts: np.ndarray, p: int) -> int:
    """Largest ``B`` with ``sum(min(counts, B)) >= p * B`` (batches of ``p`` distinct groups)."""
    lo, hi = 0, int(counts.sum()) // p
    while lo < hi:  # the feasible set is {0..B_max}: sum(min(c, B)) - p*B is concave, 0 at 0
        mid = (lo + hi + 1) // 2
        if int(np.minimum(counts, mid).sum()) >= p * mid:
            lo = mid
        else:
            hi = mid - 1
    return lo


def schedule(counts: np.ndarray, p: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Assign chunks to ``max_batches(counts, p)`` batches of ``p`` distinct identities.

    Returns one array of ``p`` identity positions per batch, in a random batch order.
    """
    n_batches = max_batches(counts, p)
    left = np.minimum(counts, n_batches).astype(np.int64)
    surplus = int(left.sum()) - p * n_batches
    if surplus > 0:
        pool = np.repeat(np.arange(len(left)), left)
        np.subtract.at(left, pool[rng.choice(len(pool), size=surplus, replace=False)], 1)
    batches: list[np.ndarray] = []
    for remaining in range(n_batches, 0, -1):
        # Invariant: sum(left) == p * remaining and left <= remaining.
        tight = np.flatnonzero(left == remaining)
        rest = np.flatnonzero((left > 0) & (left < remaining))
        need = p - len(tight)
        if need > 0:
            weights = left[rest] / left[rest].sum()
            chosen = rng.choice(rest, size=need, replace=False, p=weights)
            ids = np.concatenate([tight, chosen])
        else:
            ids = tight
        rng.shuffle(ids)
        left[ids] -= 1
        batches.append(ids)
    return [batches[i] for i in rng.permutation(n_batches)]


def fill(indices: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices from fresh permutations of ``indices`` (cycled only when needed)."""
    reps = -(-count // len(indices))
    return np.concatenate([rng.permutation(indices) for _ in range(reps)])[:count]


def _describe(pids: np.ndarray, counts: np.ndarray, limit: int = 3) -> str:
    order = np.argsort(counts, kind="stable")[:limit]
    return ", ".join(f"pid {pids[i]} has {counts[i]}" for i in order)


def _resolve_p(
    owner: str, p: int | None, k: int, batch_size: int | None, cross_modality: bool
) -> int:
    """``p`` from ``p`` and / or ``batch_size`` (``p * k``, or ``2 * p * k`` cross-modality)."""
    per_id = 2 * k if cross_modality else k
    per_id_text = f"2 * k = {per_id}" if cross_modality else f"k={k}"
    if batch_size is not None:
        batch_size = _check_int(owner, "batch_size", batch_size, 1, "images per batch")
        if batch_size % per_id:
            raise SamplerConfigError(
                f"{owner}: batch_size={batch_size} is not divisible by {per_id_text} "
                "(images per identity in a batch)"
            )
        if p is None:
            p = batch_size // per_id
            if p < 2:
                raise SamplerConfigError(
                    f"{owner}: batch_size={batch_size} with {per_id_text} gives p={p} identity "
                    "per batch; a batch needs at least 2 identities"
                )
        elif batch_size != p * per_id:
            raise SamplerConfigError(
                f"{owner}: batch_size={batch_size} does not match p * "
                f"{'2 * k' if cross_modality else 'k'} = {p * per_id} (p={p}, k={k})"
            )
    if p is None:
        raise SamplerConfigError(f"{owner}: give p (identities per batch) or batch_size")
    return _check_int(owner, "p", p, 2, "identities per batch")


def _count_by_modality(
    owner: str, pid_arr: np.ndarray, modality: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique pids, their visible / infrared image counts, and the modality array."""
    mod = _as_int_array(owner, "modality", modality)
    if mod.shape != pid_arr.shape or not np.isin(mod, (0, 1)).all():
        raise SamplerConfigError(
            f"{owner}: modality must hold 0 (visible) or 1 (infrared) for each of the "
            f"{len(pid_arr)} pids, got shape {mod.shape} with values {np.unique(mod)[:5]}"
        )
    uniq, inverse = np.unique(pid_arr, return_inverse=True)
    vis = np.bincount(inverse[mod == 0], minlength=len(uniq))
    ir = np.bincount(inverse[mod == 1], minlength=len(uniq))
    return uniq, vis, ir, mod


def check_sampler_feasible(
    pids: Sequence[int] | np.ndarray,
    *,
    k: int,
    p: int | None = None,
    batch_size: int | None = None,
    modality: Sequence[int] | np.ndarray | None = None,
    num_replicas: int = 1,
    allow_repeats: bool = True,
    chunks: str = "max",
    epoch: str = "images",
) -> SamplerPlan:
    """Check a P x K configuration against the data before training; raise ``SamplerConfigError``.

    Give ``p`` or ``batch_size`` (or both, consistent). ``modality`` given -> the cross-modality
    sampler's rules (batch = ``2 * p * k``). Errors, each naming the parameter: ``p < 2``,
    ``k < 1``, ``batch_size`` not divisible by ``k`` (``2 * k``) or not ``p * k``, fewer usable
    identities than ``p``, ``k`` larger than the images of every identity (every group of ``k``
    would be one identity's images repeated), with ``allow_repeats=False`` ``k`` larger than the
    images of any identity, and fewer batches per epoch than ``num_replicas``.
    ``epoch``: ``"images"`` (chunks of ``k`` over every identity's images) or ``"identities"`` (one
    chunk per identity). Returns the epoch's plan (per rank).
    """
    cross = modality is not None
    owner = "CrossModalitySampler" if cross else "PKSampler"
    k = _check_int(owner, "k", k, 1, "images per identity")
    p = _resolve_p(owner, p, k, batch_size, cross)
    replicas, _ = _check_ddp(owner, num_replicas, 0)
    pid_arr = _as_int_array(owner, "pids", pids)
    ignored = 0
    if not cross:
        uniq, counts = np.unique(pid_arr, return_counts=True)
        smallest = counts
    else:
        if chunks not in ("max", "min"):
            raise SamplerConfigError(f"{owner}: chunks must be 'max' or 'min', got {chunks!r}")
        uniq, vis, ir, _ = _count_by_modality(owner, pid_arr, modality)
        both = (vis > 0) & (ir > 0)
        ignored = int((~both).sum())
        uniq, vis, ir = uniq[both], vis[both], ir[both]
        counts = np.maximum(vis, ir) if chunks == "max" else np.minimum(vis, ir)
        smallest = np.minimum(vis, ir)
    if len(uniq) < p:
        what = "identities with both visible and infrared images" if cross else "identities"
        raise SamplerConfigError(
            f"{owner}: p={p} identities per batch but the data has only {len(uniq)} {what}"
        )
    largest = int(smallest.max())
    if k > largest:
        raise SamplerConfigError(
            f"{owner}: k={k} is larger than the number of images of every identity (at most "
            f"{largest}{' per modality' if cross else ''}): each group of k would repeat one "
            f"identity's images; use k <= {largest}"
        )
    short = smallest < k
    if short.any() and not allow_repeats:
        raise SamplerConfigError(
            f"{owner}: k={k} is larger than the number of images of {int(short.sum())} "
            f"identities ({_describe(uniq[short], smallest[short])}"
            f"{', counting the smaller modality' if cross else ''}); lower k or allow repeats "
            "(those identities are then completed by drawing their images again)"
        )
    if epoch not in EPOCHS:
        raise SamplerConfigError(f"{owner}: epoch must be one of {list(EPOCHS)}, got {epoch!r}")
    total = max_batches(chunk_counts(counts, k, epoch), p)
    if total < replicas:
        raise SamplerConfigError(
            f"{owner}: the data gives {total} batch(es) of p={p} x k={k} per epoch, fewer than "
            f"num_replicas={replicas}; lower p or k"
        )
    size = p * (2 * k if cross else k)
    return SamplerPlan(
        num_identities=len(uniq),
        num_batches=total // replicas,
        batch_size=size,
        images_per_epoch=total // replicas * size,
        identities_with_repeats=int(short.sum()),
        identities_ignored=ignored,
    )


class _IdentitySampler(Sampler[int]):
    """Shared epoch logic; subclasses fill ``_groups`` (per identity, per modality) and counts."""

    _groups: list[tuple[np.ndarray, ...]]
    _chunk_counts: np.ndarray

    def __init__(self, *, p: int, k: int, seed: int, num_replicas: int, rank: int) -> None:
        self.p, self.k = p, k
        self.seed = _check_int(type(self).__name__, "seed", seed, 0, "random seed")
        self.epoch = 0
        self.num_replicas, self.rank = num_replicas, rank

    @property
    def batch_size(self) -> int:
        return self.p * self.k * len(self._groups[0])

    @property
    def num_batches(self) -> int:
        """Batches per epoch on this rank."""
        return max_batches(self._chunk_counts, self.p) // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch`` next (the generator is reseeded with ``seed + epoch``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def __iter__(self) -> Iterator[int]:
        batches = self.epoch_batches()
        for batch in batches[self.rank :: self.num_replicas][: self.num_batches]:
            yield from batch.tolist()

    def epoch_batches(self) -> list[np.ndarray]:
        """Every rank's batches of the current epoch (dataset indices, one array per batch)."""
        rng = np.random.default_rng(self.seed + self.epoch)
        k = self.k
        chunks = [
            tuple(fill(idx, c * k, rng).reshape(c, k) for idx in group)
            for group, c in zip(self._groups, self._chunk_counts, strict=True)
        ]
        used = np.zeros(len(self._groups), dtype=np.int64)
        out = []
        for ids in schedule(self._chunk_counts, self.p, rng):
            parts = []
            for i in ids:
                parts.extend(per_modality[used[i]] for per_modality in chunks[i])
                used[i] += 1
            out.append(np.concatenate(parts))
        return out


class PKSampler(_IdentitySampler):
    """``p`` identities x ``k`` images per batch; see the module docstring for the epoch rules.

    ``pids[i]`` is the identity of dataset item ``i``. Identities with fewer than ``k`` images are
    completed by drawing their images again (the only case of sampling with replacement).
    """

    def __init__(
        self,
        pids: Sequence[int] | np.ndarray,
        *,
        p: int,
        k: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        epoch: str = "images",
    ) -> None:
        _check_ddp("PKSampler", num_replicas, rank)
        plan = check_sampler_feasible(pids, p=p, k=k, num_replicas=num_replicas, epoch=epoch)
        super().__init__(p=p, k=k, seed=seed, num_replicas=num_replicas, rank=rank)
        pid_arr = np.asarray(pids, dtype=np.int64)
        order = np.argsort(pid_arr, kind="stable")
        uniq, starts = np.unique(pid_arr[order], return_index=True)
        self._groups = [(g,) for g in np.split(order, starts[1:])]
        sizes = np.array([len(g[0]) for g in self._groups])
        self._chunk_counts = chunk_counts(sizes, k, epoch)
        self.epoch_mode = epoch
        self.identities = uniq  # the pids that take part
        self.plan = plan

    @classmethod
    def from_batch_size(
        cls, pids: Sequence[int] | np.ndarray, *, batch_size: int, k: int, **kwargs: Any
    ) -> PKSampler:
        """Configure by ``batch_size`` and ``k`` (``p = batch_size // k``, which must divide)."""
        k = _check_int("PKSampler", "k", k, 1, "images per identity")
        return cls(pids, p=_resolve_p("PKSampler", None, k, batch_size, False), k=k, **kwargs)


class CrossModalitySampler(_IdentitySampler):
    """``p`` identities x (``k`` visible + ``k`` infrared) per batch, visible first per identity.

    Only identities with both modalities take part. ``chunks`` decides the epoch length per
    identity (module docstring): ``"max"`` cycles the smaller modality, ``"min"`` does not.
    """

    def __init__(
        self,
        pids: Sequence[int] | np.ndarray,
        modality: Sequence[int] | np.ndarray,
        *,
        p: int,
        k: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        chunks: str = "max",
        epoch: str = "images",
    ) -> None:
        _check_ddp("CrossModalitySampler", num_replicas, rank)
        plan = check_sampler_feasible(
            pids,
            p=p,
            k=k,
            modality=modality,
            num_replicas=num_replicas,
            chunks=chunks,
            epoch=epoch,
        )
        super().__init__(p=p, k=k, seed=seed, num_replicas=num_replicas, rank=rank)
        pid_arr = np.asarray(pids, dtype=np.int64)
        mod = np.asarray(modality, dtype=np.int64)
        order = np.lexsort((mod, pid_arr))  # by pid, visible before infrared, stable
        uniq, starts = np.unique(pid_arr[order], return_index=True)
        groups, counts, kept = [], [], []
        for q, members in zip(uniq, np.split(order, starts[1:]), strict=True):
            vis, ir = members[mod[members] == 0], members[mod[members] == 1]
            if len(vis) and len(ir):
                groups.append((vis, ir))
                n = max(len(vis), len(ir)) if chunks == "max" else min(len(vis), len(ir))
                counts.append(max(1, n // k))
                kept.append(q)
        self._groups = groups
        one_each = np.ones(len(counts), dtype=np.int64)
        self._chunk_counts = one_each if epoch == "identities" else np.array(counts)
        self.epoch_mode = epoch
        self.identities = np.array(kept)  # pids with both modalities
        self.chunks = chunks
        self.plan = plan

    @classmethod
    def from_batch_size(
        cls,
        pids: Sequence[int] | np.ndarray,
        modality: Sequence[int] | np.ndarray,
        *,
        batch_size: int,
        k: int,
        **kwargs: Any,
    ) -> CrossModalitySampler:
        """Configure by ``batch_size = 2 * p * k`` and ``k``."""
        owner = "CrossModalitySampler"
        k = _check_int(owner, "k", k, 1, "images per identity")
        return cls(pids, modality, p=_resolve_p(owner, None, k, batch_size, True), k=k, **kwargs)
