"""ManifestDataset items, corrupt images, the batch contract, and deterministic loaders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reid_pipeline.data.records import DatasetFormatError, Record
from reid_pipeline.data.samplers import PKSampler
from reid_pipeline.data.torch_dataset import ManifestDataset, build_loader, read_image
from reid_pipeline.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transforms_by_modality,
    test_transform,
)

H, W = 16, 8
SPEC = [
    {"name": "resize"},
    {"name": "horizontal_flip"},
    {"name": "pad_crop", "padding": 2},
    {"name": "random_erasing", "p": 0.5},
    {"name": "channel_exchange", "modality": "visible"},
    {"name": "adaptive_gray", "modality": "infrared"},
]


def write_tree(root: Path, n_ids: int = 4, per_id: int = 4) -> list[Record]:
    """PNG images (lossless), ``per_id`` per identity, alternating modality."""
    rng = np.random.default_rng(0)
    records = []
    for pid in range(n_ids):
        for j in range(per_id):
            path = root / f"{pid:04d}_{j}.png"
            rgb = rng.integers(0, 256, size=(20, 10, 3), dtype=np.uint8)
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            records.append(Record(str(path), pid, j % 3, j % 2))
    return records


def eval_dataset(records: list[Record]) -> ManifestDataset:
    t = test_transform(H, W)
    return ManifestDataset(records, {0: t, 1: t})


def train_dataset(records: list[Record]) -> ManifestDataset:
    return ManifestDataset(records, build_transforms_by_modality(SPEC, height=H, width=W))


def test_read_image_returns_rgb(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    bgr = np.zeros((4, 2, 3), dtype=np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(path), bgr)
    image = read_image(str(path))
    assert image.shape == (4, 2, 3)
    assert image.dtype == np.uint8
    assert (image[..., 0] == 255).all()
    assert (image[..., 1:] == 0).all()


def test_item_fields_and_values(tmp_path: Path) -> None:
    records = write_tree(tmp_path)
    dataset = eval_dataset(records)
    item = dataset[5]
    assert set(item) == {"images", "pids", "camids", "modality", "index"}
    assert (item["pids"], item["camids"], item["modality"], item["index"]) == (1, 1, 1, 5)
    rgb = cv2.cvtColor(cv2.imread(records[5].path), cv2.COLOR_BGR2RGB)
    resized = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_LINEAR) / 255.0
    expected = (resized - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    torch.testing.assert_close(
        item["images"], torch.tensor(expected.transpose(2, 0, 1), dtype=torch.float32)
    )


def test_corrupt_and_missing_images_name_the_path(tmp_path: Path) -> None:
    records = write_tree(tmp_path, n_ids=2, per_id=2)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    records.append(Record(str(broken), 0, 0, 0))
    records.append(Record(str(tmp_path / "gone.jpg"), 1, 0, 0))
    dataset = eval_dataset(records)
    with pytest.raises(DatasetFormatError, match=r"broken\.jpg.*cannot be decoded"):
        dataset[4]
    with pytest.raises(DatasetFormatError, match=r"gone\.jpg.*does not exist"):
        dataset[5]


def test_corrupt_image_error_crosses_worker_processes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    loader = build_loader(eval_dataset([Record(str(broken), 0, 0, 0)]), batch_size=1, num_workers=1)
    with pytest.raises(DatasetFormatError, match=r"broken\.png"):
        next(iter(loader))


def test_constructor_errors(tmp_path: Path) -> None:
    records = write_tree(tmp_path, n_ids=2, per_id=2)
    with pytest.raises(ValueError, match=r"modality \[1\].*keys \[0\]"):
        ManifestDataset(records, {0: test_transform(H, W)})
    with pytest.raises(ValueError, match="records is empty"):
        ManifestDataset([], {0: test_transform(H, W)})


def test_batch_contract_with_pk_sampler(tmp_path: Path) -> None:
    dataset = train_dataset(write_tree(tmp_path))
    sampler = PKSampler(dataset.pids, p=2, k=4, seed=0)
    loader = build_loader(dataset, batch_size=8, sampler=sampler, seed=1)
    batches = list(loader)
    assert len(batches) == len(loader) == 2
    batch = batches[0]
    assert batch["images"].shape == (8, 3, H, W)
    assert batch["images"].dtype == torch.float32
    for key in ("pids", "camids", "modality", "index"):
        assert batch[key].dtype == torch.int64
        assert batch[key].shape == (8,)
    assert batch["pids"].view(2, 4).unique(dim=1).shape == (2, 1)
    assert loader.pin_memory == torch.cuda.is_available()
    assert loader.drop_last


def epochs(
    records: list[Record], *, num_workers: int, persistent: bool, start: int = 0, stop: int = 3
) -> list[torch.Tensor]:
    dataset = train_dataset(records)
    sampler = PKSampler(dataset.pids, p=2, k=4, seed=3)
    loader = build_loader(
        dataset,
        batch_size=8,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=persistent,
        seed=5,
    )
    out = []
    for epoch in range(start, stop):
        loader.set_epoch(epoch)
        out.append(torch.cat([b["images"] for b in loader]))
    return out


def test_augmentation_is_deterministic_per_epoch_and_resumable(tmp_path: Path) -> None:
    records = write_tree(tmp_path)
    main = epochs(records, num_workers=0, persistent=False)
    assert not torch.equal(main[0], main[1])
    again = epochs(records, num_workers=0, persistent=False)
    assert all(torch.equal(a, b) for a, b in zip(main, again, strict=True))
    resumed = epochs(records, num_workers=0, persistent=False, start=2)
    assert torch.equal(resumed[0], main[2])


def test_workers_fresh_and_persistent_draw_the_same_epochs(tmp_path: Path) -> None:
    records = write_tree(tmp_path)
    fresh = epochs(records, num_workers=2, persistent=False)
    persistent = epochs(records, num_workers=2, persistent=True)
    assert all(torch.equal(a, b) for a, b in zip(fresh, persistent, strict=True))
    resumed = epochs(records, num_workers=2, persistent=True, start=2)
    assert torch.equal(resumed[0], fresh[2])
    assert not torch.equal(fresh[1], fresh[2])


def test_shuffle_is_seeded_per_epoch(tmp_path: Path) -> None:
    dataset = eval_dataset(write_tree(tmp_path))

    def order(seed: int, epoch: int) -> list[int]:
        loader = build_loader(dataset, batch_size=4, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return torch.cat([b["index"] for b in loader]).tolist()

    assert order(0, 0) == order(0, 0)
    assert sorted(order(0, 0)) == list(range(16))
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    plain = build_loader(dataset, batch_size=5)
    assert torch.cat([b["index"] for b in plain]).tolist() == list(range(16))
    assert not plain.drop_last


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 6}, r"batch_size=6 but the PKSampler yields batches of 8"),
        ({"batch_size": 8, "shuffle": True}, "either sampler or shuffle"),
        ({"batch_size": 8, "persistent_workers": True}, "need num_workers > 0"),
        ({"batch_size": 8, "num_workers": -1}, "num_workers must be an integer >= 0"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_build_loader_errors(tmp_path: Path, kwargs: dict, match: str) -> None:
    dataset = eval_dataset(write_tree(tmp_path))
    sampler = PKSampler(dataset.pids, p=2, k=4)
    with pytest.raises(ValueError, match=match):
        build_loader(dataset, sampler=sampler, **kwargs)
