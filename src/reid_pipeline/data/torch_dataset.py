"""The torch ``Dataset`` over manifest records, and the ``DataLoader`` built for it.

Batch contract (with ``fit()`` and extraction): the default collate turns the items into
``{"images": FloatTensor[B, 3, H, W], "pids": LongTensor[B], "camids": LongTensor[B],
"modality": LongTensor[B], "index": LongTensor[B]}``; ``index`` is the position in ``records``.

Decoding: OpenCV (``cv2.imread`` + BGR->RGB), measured faster than PIL in benchmarks/
bench_augment.py. An image that cannot be read or decoded raises ``DatasetFormatError`` (a
``DataError``) naming the path. libjpeg decodes a JPEG cut short as far as it goes (grey below,
a warning naming no file): ``read_image`` checks that a JPEG ends with its end-of-image marker
(2 + 64 bytes read) and raises for a damaged one too, never substituting an image. The message
suggests the ``verify_images`` load option, which finds every damaged file before training.

Deterministic augmentation (ours). The random stream of the transforms is reseeded from
``SeedSequence([seed, epoch, rank, worker_id])`` the first time a process (the main process with
``num_workers=0``, or a worker) reads an item in an epoch. A plain sum ``seed + epoch + worker``
would give epoch 1 / worker 0 the stream of epoch 0 / worker 1. The epoch lives in shared memory
and is set by ``ReidLoader.set_epoch``, so persistent workers reseed at each epoch as well; an
epoch's augmentations therefore depend only on (seed, epoch, rank, worker, order of the items the
worker reads), which makes a resumed run draw what the uninterrupted one drew. Python's ``random``
and numpy's global generator are seeded the same way in each worker for third-party transforms;
torch's is seeded by the loader's generator (reseeded per epoch).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from reid_pipeline.data.image_check import jpeg_cut_short
from reid_pipeline.data.records import DatasetFormatError, Record

_VERIFY_HINT = (
    "; set `options: {verify_images: true}` in the dataset's parameters to list every damaged "
    "file before training (docs/datasets.md)"
)


def read_image(path: str) -> np.ndarray:
    """Decode ``path`` to an HxWx3 uint8 RGB array; ``DatasetFormatError`` naming the path when
    it is missing, unreadable or damaged (a JPEG cut short included)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        if not os.path.exists(path):
            raise DatasetFormatError(f"image {path!r} does not exist")
        raise DatasetFormatError(f"image {path!r} cannot be decoded as an image{_VERIFY_HINT}")
    damage = jpeg_cut_short(path)
    if damage is not None:
        raise DatasetFormatError(
            f"image {path!r} is damaged and cannot be decoded completely ({damage}){_VERIFY_HINT}"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def seed_for(seed: int, epoch: int, rank: int, worker: int) -> int:
    """The 32-bit seed of one (seed, epoch, rank, worker) stream."""
    return int(np.random.SeedSequence([seed, epoch, rank, worker]).generate_state(1)[0])


class ManifestDataset(Dataset[dict[str, Any]]):
    """Records -> ``{"images", "pids", "camids", "modality", "index"}`` items.

    ``transform_by_modality[record.modality]`` maps the decoded HWC uint8 RGB image to a
    ``FloatTensor[3, H, W]`` (e.g. ``build_transforms_by_modality``). Transforms with a
    ``set_random_seed(seed)`` method are reseeded per (epoch, worker); see the module docstring.
    """

    def __init__(
        self,
        records: Sequence[Record],
        transform_by_modality: Mapping[int, Callable[[np.ndarray], Tensor]],
        *,
        seed: int = 0,
    ) -> None:
        self.records = [Record(*r) for r in records]
        if not self.records:
            raise ValueError("ManifestDataset: records is empty")
        self.transform_by_modality = dict(transform_by_modality)
        missing = sorted({r.modality for r in self.records} - set(self.transform_by_modality))
        if missing:
            raise ValueError(
                f"ManifestDataset: the records have modality {missing} but transform_by_modality "
                f"has keys {sorted(self.transform_by_modality)}"
            )
        self.seed = int(seed)
        self.rank = 0  # DDP rank, set by build_loader; part of the augmentation seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._stream: tuple[int, int, int] | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def pids(self) -> list[int]:
        return [r.pid for r in self.records]

    @property
    def modality(self) -> list[int]:
        return [r.modality for r in self.records]

    def set_seed(self, seed: int, *, rank: int = 0) -> None:
        self.seed, self.rank = int(seed), int(rank)
        self._stream = None

    def set_epoch(self, epoch: int) -> None:
        """Seen by every worker, persistent ones included."""
        self._epoch.fill_(int(epoch))
        self._stream = None

    def reset_stream(self, *, seed_globals: bool = False) -> None:
        """Forget the current stream: the next item reseeds (called at each loader iteration)."""
        self._stream = None
        if seed_globals:
            value = seed_for(self.seed, int(self._epoch), self.rank, _worker_id())
            random.seed(value)
            np.random.seed(value)  # noqa: NPY002 - global generator for third-party code

    def _ensure_stream(self) -> None:
        key = (int(self._epoch), self.rank, _worker_id())
        if key == self._stream:
            return
        self._stream = key
        base = seed_for(self.seed, *key)
        for offset, modality in enumerate(sorted(self.transform_by_modality)):
            transform = self.transform_by_modality[modality]
            if hasattr(transform, "set_random_seed"):
                transform.set_random_seed(base + offset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        self._ensure_stream()
        record = self.records[index]
        image = self.transform_by_modality[record.modality](read_image(record.path))
        return {
            "images": image,
            "pids": record.pid,
            "camids": record.camid,
            "modality": record.modality,
            "index": index,
        }


def _worker_id() -> int:
    info = get_worker_info()
    return 0 if info is None else info.id


def _worker_init(worker_id: int) -> None:
    cv2.setNumThreads(0)  # one decode thread per worker; no oversubscription
    info = get_worker_info()
    if info is not None and isinstance(info.dataset, ManifestDataset):
        info.dataset.reset_stream(seed_globals=True)


class ReidLoader(DataLoader):
    """A ``DataLoader`` whose ``set_epoch`` reseeds sampler, shuffling and augmentation."""

    def __init__(self, *args: Any, seed: int = 0, rank: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seed, self.rank = int(seed), int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Call before iterating epoch ``epoch`` (iterate each epoch once: persistent workers
        continue their stream on a second pass, fresh workers would restart it)."""
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        if self.generator is not None:
            self.generator.manual_seed(seed_for(self.seed, self.epoch, self.rank, 0))
        if isinstance(self.dataset, ManifestDataset):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Any:
        if isinstance(self.dataset, ManifestDataset):
            self.dataset.reset_stream()
        return super().__iter__()


def build_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    sampler: Sampler[int] | None = None,
    shuffle: bool = False,
    drop_last: bool | None = None,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    seed: int = 0,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
    rank: int | None = None,
) -> ReidLoader:
    """A ``ReidLoader`` over ``dataset`` with deterministic shuffling and worker seeding.

    - ``sampler`` (e.g. ``PKSampler``) or ``shuffle`` (a seeded random permutation per epoch);
      not both. With a sampler that has ``batch_size`` (the identity samplers), ``batch_size``
      must equal it. Under DDP pass a sampler built for this rank (``num_replicas``, ``rank``:
      the identity samplers, or ``DistributedSampler``); ``shuffle`` alone does not shard.
    - ``drop_last``: default True with a sampler or ``shuffle`` (training), False otherwise.
    - ``pin_memory``: default ``torch.cuda.is_available()``.
    - ``seed``: the augmentation streams and the shuffling order derive from it (with the epoch,
      rank and worker id); a ``ManifestDataset`` gets it through ``set_seed``.
    - ``rank``: the DDP rank mixed into the seeds; default: ``torch.distributed``'s rank, or 0.
    - ``persistent_workers`` / ``prefetch_factor``: as ``DataLoader`` (need ``num_workers > 0``).
    Call ``loader.set_epoch(epoch)`` before each epoch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"build_loader: batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"build_loader: num_workers must be an integer >= 0, got {num_workers!r}")
    if sampler is not None and shuffle:
        raise ValueError("build_loader: give either sampler or shuffle=True, not both")
    expected = getattr(sampler, "batch_size", None)
    if expected is not None and expected != batch_size:
        raise ValueError(
            f"build_loader: batch_size={batch_size} but the {type(sampler).__name__} yields "
            f"batches of {expected} (p * k); use batch_size={expected}"
        )
    if num_workers == 0 and (persistent_workers or prefetch_factor is not None):
        raise ValueError(
            "build_loader: persistent_workers and prefetch_factor need num_workers > 0"
        )
    rank = _rank() if rank is None else int(rank)
    if isinstance(dataset, ManifestDataset):
        dataset.set_seed(seed, rank=rank)
    generator = torch.Generator()
    loader = ReidLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=shuffle,
        drop_last=(sampler is not None or shuffle) if drop_last is None else drop_last,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        worker_init_fn=_worker_init,
        generator=generator,
        persistent_workers=persistent_workers,
        prefetch_factor=prefetch_factor,
        seed=seed,
        rank=rank,
    )
    loader.set_epoch(0)
    return loader
