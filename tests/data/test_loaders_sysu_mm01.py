"""SYSU-MM01 loader: tiny tree checked record by record, malformed trees, and the published
statistics on a tree with the real identity folders and per-camera image counts."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.shared_data import SYSU_OFFICIAL as OFFICIAL
from tests.shared_data import SYSU_OFFICIAL_MISSING, SYSU_OFFICIAL_PRESENT

from reid_pipeline.data import DatasetFormatError, load_dataset


def _rel(records, base: Path) -> list[tuple[str, int, int, int]]:
    return [(str(Path(r.path).relative_to(base)), r.pid, r.camid, r.modality) for r in records]


def test_sysu_records_exact(sysu_root: Path) -> None:
    splits = load_dataset("sysu_mm01", sysu_root)
    base = sysu_root / "SYSU-MM01"
    # train = train_id (1, 2) + val_id (3); one label per person across both modalities
    assert _rel(splits.train, base) == [
        ("cam1/0001/0001.jpg", 0, 0, 0),
        ("cam1/0001/0002.jpg", 0, 0, 0),
        ("cam2/0002/0001.jpg", 1, 1, 0),
        ("cam3/0001/0001.jpg", 0, 2, 1),
        ("cam3/0003/0001.jpg", 2, 2, 1),
        ("cam4/0001/0001.jpg", 0, 3, 0),
        ("cam5/0003/0001.jpg", 2, 4, 0),
        ("cam6/0002/0001.jpg", 1, 5, 1),
        ("cam6/0002/0002.jpg", 1, 5, 1),
    ]
    # query = every infrared image of the test ids, original pids
    assert _rel(splits.query, base) == [
        ("cam3/0004/0001.jpg", 4, 2, 1),
        ("cam3/0004/0002.jpg", 4, 2, 1),
        ("cam6/0004/0001.jpg", 4, 5, 1),
        ("cam6/0005/0001.jpg", 5, 5, 1),
    ]
    # gallery = every visible image of the test ids (the protocol samples from it)
    assert _rel(splits.gallery, base) == [
        ("cam1/0004/0001.jpg", 4, 0, 0),
        ("cam1/0004/0002.jpg", 4, 0, 0),
        ("cam2/0004/0001.jpg", 4, 1, 0),
        ("cam4/0005/0001.jpg", 5, 3, 0),
        ("cam5/0005/0001.jpg", 5, 4, 0),
    ]
    assert splits.info["test_ids"] == [4, 5]
    assert splits.info["dataset_dir"] == str(base)
    assert splits.info["num_train_pids"] == 3
    assert splits.info["num_cameras"] == 6
    assert splits.info["train_ids"] == [1, 2]
    assert splits.info["val_ids"] == [3]


def test_sysu_root_may_be_the_dataset_folder(sysu_root: Path) -> None:
    splits = load_dataset("sysu_mm01", sysu_root / "SYSU-MM01", relabel=False)
    assert sorted({r.pid for r in splits.train}) == [1, 2, 3]


@pytest.mark.parametrize("part", ["train", "val", "test"])
def test_sysu_missing_exp_file(sysu_root: Path, part: str) -> None:
    path = sysu_root / "SYSU-MM01" / "exp" / f"{part}_id.txt"
    path.unlink()
    with pytest.raises(DatasetFormatError, match=rf"{path}: missing file"):
        load_dataset("sysu_mm01", sysu_root)


def test_sysu_bad_id_token(sysu_root: Path) -> None:
    path = sysu_root / "SYSU-MM01" / "exp" / "val_id.txt"
    path.write_text("3,x7\n")
    with pytest.raises(DatasetFormatError, match=rf"{path}: cannot parse id 'x7'"):
        load_dataset("sysu_mm01", sysu_root)


def test_sysu_overlapping_splits(sysu_root: Path) -> None:
    (sysu_root / "SYSU-MM01" / "exp" / "val_id.txt").write_text("3,4")
    with pytest.raises(DatasetFormatError, match=r"ids \[4\] appear in both val_id.txt and test"):
        load_dataset("sysu_mm01", sysu_root)


def test_sysu_listed_id_without_images(sysu_root: Path) -> None:
    (sysu_root / "SYSU-MM01" / "exp" / "train_id.txt").write_text("1,2,9")
    with pytest.raises(DatasetFormatError, match=r"train_id.txt: id 9 has no images"):
        load_dataset("sysu_mm01", sysu_root)


def test_sysu_camera_folder_out_of_range(sysu_root: Path, image_writer) -> None:
    bad = sysu_root / "SYSU-MM01" / "cam7"
    image_writer(bad / "0001" / "0001.jpg")
    with pytest.raises(DatasetFormatError, match=rf"{bad}: camera folder out of range"):
        load_dataset("sysu_mm01", sysu_root)


def test_sysu_missing_camera_folder(sysu_root: Path) -> None:
    shutil.rmtree(sysu_root / "SYSU-MM01" / "cam4")
    with pytest.raises(DatasetFormatError, match=r"SYSU-MM01/cam4: missing camera folder"):
        load_dataset("sysu_mm01", sysu_root)


def test_sysu_bad_person_folder(sysu_root: Path) -> None:
    bad = sysu_root / "SYSU-MM01" / "cam2" / "person7"
    bad.mkdir()
    with pytest.raises(DatasetFormatError, match=rf"{bad}: folder name does not parse"):
        load_dataset("sysu_mm01", sysu_root)


def test_sysu_bad_image_name(sysu_root: Path, image_writer) -> None:
    bad = image_writer(sysu_root / "SYSU-MM01" / "cam1" / "0004" / "img_a.jpg")
    with pytest.raises(DatasetFormatError, match=rf"{bad}: file name does not parse"):
        load_dataset("sysu_mm01", sysu_root)


def test_sysu_no_infrared_test_images_is_empty_query(sysu_root: Path) -> None:
    for camera, pid in ((3, 4), (6, 4), (6, 5)):
        shutil.rmtree(sysu_root / "SYSU-MM01" / f"cam{camera}" / f"{pid:04d}")
    with pytest.raises(DatasetFormatError, match=r"SYSU-MM01: the query .* split is empty"):
        load_dataset("sysu_mm01", sysu_root)


def test_sysu_verify_images(sysu_root: Path) -> None:
    bad = sysu_root / "SYSU-MM01" / "cam6" / "0005" / "0001.jpg"
    bad.write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=rf"{bad}: unreadable image"):
        load_dataset("sysu_mm01", sysu_root, verify_images=True)


# --------------------------------------------------------------------------- real statistics


def _official_counts() -> tuple[dict[tuple[int, int], int], list[int], list[int]]:
    """(camera, pid) -> number of images, from the columns of the official permutation arrays,
    plus the official train and test ids."""
    scipy_io = pytest.importorskip("scipy.io")
    cells = scipy_io.loadmat(OFFICIAL / "rand_perm_cam.mat")["rand_perm_cam"]  # (6, 1) cells
    counts = {}
    for camera in range(1, 7):
        per_id = cells[camera - 1, 0]  # (num ids in that camera, 1) cells of (10, n) arrays
        for index in range(per_id.shape[0]):
            perm = np.asarray(per_id[index, 0])
            n = perm.shape[1] if perm.ndim == 2 else 0
            if n:
                counts[camera, index + 1] = n
    train = [int(i) for i in scipy_io.loadmat(OFFICIAL / "train_id.mat")["id"].ravel()]
    test = [int(i) for i in scipy_io.loadmat(OFFICIAL / "test_id.mat")["id"].ravel()]
    return counts, train, test


@pytest.fixture
def scratch_dir(tmp_path: Path) -> Iterator[Path]:
    """A RAM-backed folder (``/dev/shm``) where there is one, else ``tmp_path``: creating and
    removing ~48k directory entries there takes ~1 s instead of 10-60 s on a busy shared disk.
    Removed at teardown, so no large tree is left to pytest's tmp retention."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        path = Path(tempfile.mkdtemp(prefix="reid_sysu_", dir=shm))
    else:
        path = tmp_path / "scratch"
        path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not SYSU_OFFICIAL_PRESENT, reason=SYSU_OFFICIAL_MISSING)
def test_sysu_published_statistics_on_real_identity_layout(scratch_dir: Path) -> None:
    counts, train_ids, test_ids = _official_counts()
    visible, infrared = (1, 2, 4, 5), (3, 6)
    ids_with = {
        modality: {pid for (camera, pid) in counts if camera in cams}
        for modality, cams in (("vis", visible), ("ir", infrared))
    }
    # val ids: the remaining ids seen in both modalities. The release also has 22 ids seen in one
    # modality only (folders present, in no exp list); they must not enter any split.
    val_ids = sorted((ids_with["vis"] & ids_with["ir"]) - set(train_ids) - set(test_ids))
    one_modality = (ids_with["vis"] ^ ids_with["ir"]) - set(train_ids) - set(test_ids)
    assert (len(train_ids), len(val_ids), len(test_ids), len(one_modality)) == (296, 99, 96, 22)

    start = time.perf_counter()
    dataset_dir = scratch_dir / "SYSU-MM01"
    flags = os.O_WRONLY | os.O_CREAT
    for (camera, pid), n in counts.items():
        folder = dataset_dir / f"cam{camera}" / f"{pid:04d}"
        folder.mkdir(parents=True)
        for k in range(1, n + 1):
            os.close(os.open(folder / f"{k:04d}.jpg", flags, 0o644))  # empty: not decoded
    (dataset_dir / "exp").mkdir()
    for part, ids in (("train", train_ids), ("val", val_ids), ("test", test_ids)):
        (dataset_dir / "exp" / f"{part}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    written = time.perf_counter() - start

    start = time.perf_counter()
    splits = load_dataset("sysu_mm01", scratch_dir)
    loading = time.perf_counter() - start

    train_vis = sum(1 for r in splits.train if r.modality == 0)
    train_ir = sum(1 for r in splits.train if r.modality == 1)
    assert splits.info["num_train_pids"] == 395
    assert (train_vis, train_ir) == (22_258, 11_909)
    assert len(splits.query) == 3_803
    assert {r.camid for r in splits.query} == {2, 5}
    expected_gallery = sum(
        n for (camera, pid), n in counts.items() if camera in visible and pid in set(test_ids)
    )
    assert len(splits.gallery) == expected_gallery
    assert {r.pid for r in splits.gallery} == set(test_ids)
    assert {r.camid for r in splits.gallery} == {0, 1, 3, 4}
    assert splits.info["test_ids"] == sorted(test_ids)
    # ~1 s on an idle 2-core machine; the bound only catches per-file work gone quadratic.
    print(f"SYSU-MM01 tree: written in {written:.2f} s, loaded in {loading:.2f} s")
    assert loading < 30, (
        f"listing {len(counts)} id folders took {loading:.1f} s (writing {written:.1f} s)"
    )
