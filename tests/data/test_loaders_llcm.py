"""LLCM loader on a tiny tree of the release layout (idx lists + per-camera test folders)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reid_pipeline.data import DatasetFormatError, load_dataset


def _rel(records, base: Path) -> list[tuple[str, int, int, int]]:
    return [(str(Path(r.path).relative_to(base)), r.pid, r.camid, r.modality) for r in records]


def test_llcm_records_exact(llcm_root: Path) -> None:
    splits = load_dataset("llcm", llcm_root)
    base = llcm_root / "LLCM"
    assert _rel(splits.train, base) == [
        ("nir/0001/0001_c02_s200010_f4002_nir.jpg", 0, 1, 1),
        ("nir/0002/0002_c04_s200020_f4004_nir.jpg", 1, 3, 1),
        ("vis/0001/0001_c01_s200010_f4001_vis.jpg", 0, 0, 0),
        ("vis/0001/0001_c09_s200010_f4009_vis.jpg", 0, 8, 0),
        ("vis/0002/0002_c04_s200020_f4004_vis.jpg", 1, 3, 0),
    ]
    # query = test NIR, gallery = test VIS, original pids, camid = camera - 1
    assert _rel(splits.query, base) == [
        ("nir/0003/0003_c02_s200030_f4002_nir.jpg", 3, 1, 1),
        ("nir/0004/0004_c06_s200040_f4006_nir.jpg", 4, 5, 1),
        ("nir/0004/0004_c07_s200040_f4007_nir.jpg", 4, 6, 1),
    ]
    assert _rel(splits.gallery, base) == [
        ("vis/0003/0003_c01_s200030_f4001_vis.jpg", 3, 0, 0),
        ("vis/0003/0003_c05_s200030_f4005_vis.jpg", 3, 4, 0),
        ("vis/0004/0004_c08_s200040_f4008_vis.jpg", 4, 7, 0),
    ]
    assert splits.info["test_ids"] == [3, 4]
    assert splits.info["test_source"] == "lists"
    assert splits.info["dataset_dir"] == str(base)
    assert splits.info["num_cameras"] == 9
    assert splits.info["num_train_pids"] == 2


def test_llcm_test_folders_give_the_same_records(llcm_root: Path) -> None:
    from_lists = load_dataset("llcm", llcm_root)
    from_folders = load_dataset("llcm", llcm_root, test_source="folders")
    base = llcm_root / "LLCM"
    assert _rel(from_folders.query, base) == [
        ("test_nir/cam2/0003/0003_c02_s200030_f4002_nir.jpg", 3, 1, 1),
        ("test_nir/cam6/0004/0004_c06_s200040_f4006_nir.jpg", 4, 5, 1),
        ("test_nir/cam7/0004/0004_c07_s200040_f4007_nir.jpg", 4, 6, 1),
    ]
    key = [(r.pid, r.camid, r.modality, Path(r.path).name) for r in from_lists.gallery]
    assert [(r.pid, r.camid, r.modality, Path(r.path).name) for r in from_folders.gallery] == key
    assert from_folders.info["test_source"] == "folders"


def test_llcm_auto_falls_back_to_folders(llcm_root: Path) -> None:
    (llcm_root / "LLCM" / "idx" / "test_vis.txt").unlink()
    splits = load_dataset("llcm", llcm_root)
    assert splits.info["test_source"] == "folders"
    assert len(splits.gallery) == 3


def test_llcm_folders_restricted_to_test_ids(llcm_root: Path, image_writer) -> None:
    image_writer(llcm_root / "LLCM" / "test_vis/cam3/0009/0009_c03_s1_f1_vis.jpg")
    splits = load_dataset("llcm", llcm_root, test_source="folders")
    assert {r.pid for r in splits.gallery} == {3, 4}
    (llcm_root / "LLCM" / "idx" / "test_id.txt").unlink()
    splits = load_dataset("llcm", llcm_root, test_source="folders")
    assert {r.pid for r in splits.gallery} == {3, 4, 9}
    assert "test_ids" not in splits.info


def test_llcm_lists_pointing_into_camera_folders(llcm_root: Path, list_writer) -> None:
    """A list may also name the per-camera copies; the cam<k> folder is then checked too."""
    idx = llcm_root / "LLCM" / "idx"
    list_writer(idx / "test_nir.txt", [("test_nir/cam6/0004/0004_c06_s200040_f4006_nir.jpg", 1)])
    splits = load_dataset("llcm", llcm_root)
    assert [(r.pid, r.camid) for r in splits.query] == [(4, 5)]


def test_llcm_bad_test_source(llcm_root: Path) -> None:
    with pytest.raises(ValueError, match=r"'test_source' must be one of \['auto', 'lists'"):
        load_dataset("llcm", llcm_root, test_source="both")


def test_llcm_missing_train_list(llcm_root: Path) -> None:
    path = llcm_root / "LLCM" / "idx" / "train_nir.txt"
    path.unlink()
    with pytest.raises(DatasetFormatError, match=rf"{path}: missing file"):
        load_dataset("llcm", llcm_root)


def test_llcm_missing_test_folder(llcm_root: Path) -> None:
    shutil.rmtree(llcm_root / "LLCM" / "test_nir")
    with pytest.raises(DatasetFormatError, match=r"LLCM/test_nir: missing folder"):
        load_dataset("llcm", llcm_root, test_source="folders")


@pytest.mark.parametrize(
    ("list_name", "rel", "message"),
    [
        ("train_vis.txt", "vis/0001/0001-c01_s1_f1_vis.jpg", "does not parse"),
        ("train_vis.txt", "vis/0001/0002_c01_s1_f1_vis.jpg", "lies in folder '0001'"),
        ("train_vis.txt", "vis/0001/0001_c10_s1_f1_vis.jpg", "camera 10 .* out of range"),
        ("train_vis.txt", "vis/0001/0001_c00_s1_f1_vis.jpg", "camera 0 .* out of range"),
        ("train_vis.txt", "nir/0001/0001_c02_s200010_f4002_nir.jpg", "nir image in a vis list"),
        ("test_nir.txt", "test_nir/cam4/0003/0003_c02_s200030_f4002_nir.jpg", r"expected cam2/"),
        ("test_vis.txt", "vis/0003/0003_c03_s9_f9_vis.jpg", "does not exist"),
    ],
)
def test_llcm_bad_list_entry_names_file_and_line(
    llcm_root: Path, list_name: str, rel: str, message: str
) -> None:
    path = llcm_root / "LLCM" / "idx" / list_name
    text = path.read_text() + f"{rel} 0\n"
    path.write_text(text)
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_dataset("llcm", llcm_root)
    assert f"{path}, line {len(text.splitlines())}:" in str(info.value)


def test_llcm_inconsistent_labels(llcm_root: Path) -> None:
    path = llcm_root / "LLCM" / "idx" / "train_vis.txt"
    path.write_text(
        path.read_text().replace(
            "0002_c04_s200020_f4004_vis.jpg 1", "0002_c04_s200020_f4004_vis.jpg 0"
        )
    )
    with pytest.raises(DatasetFormatError, match=rf"{path}, line 3: label 0 is used for person 2"):
        load_dataset("llcm", llcm_root)


def test_llcm_path_containing_cam_elsewhere_is_not_misparsed(
    tmp_path: Path, llcm_root: Path
) -> None:
    """Only the last components are parsed: a 'cam' or 'c0' higher up the path changes nothing."""
    moved = tmp_path / "cam7_c05_storage"
    shutil.move(llcm_root / "LLCM", moved / "LLCM")
    splits = load_dataset("llcm", moved)
    assert [r.camid for r in splits.query] == [1, 5, 6]


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("test_vis/cam10/0003/0003_c10_s1_f1_vis.jpg", r"cam10: camera folder does not parse"),
        ("test_vis/camera1/0003/0003_c01_s1_f1_vis.jpg", r"camera1: camera folder does not parse"),
        ("test_vis/cam1/p003/0003_c01_s1_f1_vis.jpg", r"p003: folder name does not parse"),
        ("test_vis/cam1/0003/0003_c02_s1_f1_vis.jpg", r"lies in cam1/; expected cam2/"),
        ("test_vis/cam1/0003/0003_c01_s1_f1_nir.jpg", r"nir image in a vis list or folder"),
        ("test_vis/cam1/0003/frame.jpg", r"file name 'frame.jpg' does not parse"),
    ],
)
def test_llcm_bad_test_folder_entry(llcm_root: Path, image_writer, rel: str, message: str) -> None:
    image_writer(llcm_root / "LLCM" / rel)
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_dataset("llcm", llcm_root, test_source="folders")
    assert str(llcm_root / "LLCM" / "test_vis") in str(info.value)


def test_llcm_empty_test_folder(llcm_root: Path) -> None:
    shutil.rmtree(llcm_root / "LLCM" / "test_nir")
    (llcm_root / "LLCM" / "test_nir").mkdir()
    with pytest.raises(DatasetFormatError, match=r"test_nir: the test_nir \(test images\) split"):
        load_dataset("llcm", llcm_root, test_source="folders")


def test_llcm_verify_images(llcm_root: Path) -> None:
    bad = llcm_root / "LLCM" / "nir" / "0004" / "0004_c07_s200040_f4007_nir.jpg"
    bad.write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=rf"{bad}: unreadable image"):
        load_dataset("llcm", llcm_root, verify_images=True)
