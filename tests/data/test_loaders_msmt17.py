"""MSMT17 V1 / V2 loader on tiny trees of the real layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reid_pipeline.data import DatasetFormatError, load_dataset


def _rel(records, base: Path) -> list[tuple[str, int, int, int]]:
    return [(str(Path(r.path).relative_to(base)), r.pid, r.camid, r.modality) for r in records]


def test_msmt17_v1_records_exact(msmt17_root: Path) -> None:
    splits = load_dataset("msmt17", msmt17_root)
    base = msmt17_root / "MSMT17_V1"
    assert splits.root == str(base)
    assert _rel(splits.train, base) == [
        ("train/0000/0000_000_01_0303morning_0015_0.jpg", 0, 0, 0),
        ("train/0000/0000_001_05_0303noon_0020_1.jpg", 0, 4, 0),
        ("train/0001/0001_000_15_0303afternoon_0100_0.jpg", 1, 14, 0),
        ("train/0001/0001_001_02_0303morning_0110_0.jpg", 1, 1, 0),
    ]
    assert _rel(splits.query, base) == [
        ("test/0000/0000_000_01_0304morning_0010_0.jpg", 0, 0, 0),
        ("test/0001/0001_000_11_0304noon_0011_0.jpg", 1, 10, 0),
    ]
    assert [(r.pid, r.camid) for r in splits.gallery] == [(0, 3), (1, 11), (1, 12)]
    assert splits.info["version"] == "v1"
    assert splits.info["combine_val"] is False
    assert splits.info["num_cameras"] == 15
    assert splits.info["num_train_pids"] == 2


def test_msmt17_combine_val(msmt17_root: Path) -> None:
    splits = load_dataset("msmt17", msmt17_root, combine_val=True)
    assert len(splits.train) == 6
    assert sorted({r.pid for r in splits.train}) == [0, 1, 2]
    assert splits.info["num_train_pids"] == 3
    assert splits.info["combine_val"] is True


def test_msmt17_v2_layout(tmp_path: Path, msmt17_writer) -> None:
    msmt17_writer(tmp_path, "v2")
    splits = load_dataset("msmt17", tmp_path)
    assert splits.info["version"] == "v2"
    assert all("/MSMT17_V2/mask_train_v2/" in r.path for r in splits.train)
    assert all("/MSMT17_V2/mask_test_v2/" in r.path for r in splits.query + splits.gallery)
    assert (len(splits.train), len(splits.query), len(splits.gallery)) == (4, 2, 3)


def test_msmt17_v1_preferred_and_version_option(tmp_path: Path, msmt17_writer) -> None:
    msmt17_writer(tmp_path, "v1")
    msmt17_writer(tmp_path, "v2")
    assert load_dataset("msmt17", tmp_path).info["version"] == "v1"
    assert load_dataset("msmt17", tmp_path, version="v2").info["version"] == "v2"
    direct = load_dataset("msmt17", tmp_path / "MSMT17_V2")
    assert direct.info["version"] == "v2"


def test_msmt17_requested_version_missing(msmt17_root: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"MSMT17_V2: dataset folder not found"):
        load_dataset("msmt17", msmt17_root, version="v2")


def test_msmt17_bad_options(msmt17_root: Path) -> None:
    with pytest.raises(ValueError, match=r"'version' must be one of \['v1', 'v2'\]"):
        load_dataset("msmt17", msmt17_root, version="v3")
    with pytest.raises(ValueError, match=r"'combine_val' must be True or False"):
        load_dataset("msmt17", msmt17_root, combine_val="yes")


def test_msmt17_no_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=rf"{tmp_path}: no MSMT17 folder found"):
        load_dataset("msmt17", tmp_path)


def test_msmt17_missing_list_file(msmt17_root: Path) -> None:
    path = msmt17_root / "MSMT17_V1" / "list_query.txt"
    path.unlink()
    with pytest.raises(DatasetFormatError, match=rf"{path}: missing file"):
        load_dataset("msmt17", msmt17_root)


def test_msmt17_val_list_only_needed_with_combine_val(msmt17_root: Path) -> None:
    (msmt17_root / "MSMT17_V1" / "list_val.txt").unlink()
    assert len(load_dataset("msmt17", msmt17_root).train) == 4
    with pytest.raises(DatasetFormatError, match=r"list_val.txt: missing file"):
        load_dataset("msmt17", msmt17_root, combine_val=True)


def test_msmt17_missing_image_folder(msmt17_root: Path) -> None:
    shutil.rmtree(msmt17_root / "MSMT17_V1" / "test")
    with pytest.raises(DatasetFormatError, match=r"MSMT17_V1/test: missing folder"):
        load_dataset("msmt17", msmt17_root)


def _append(path: Path, line: str) -> int:
    text = path.read_text() + line + "\n"
    path.write_text(text)
    return len(text.splitlines())


@pytest.mark.parametrize(
    ("list_name", "line", "message"),
    [
        ("list_train.txt", "0000/0000_000_01_0303morning_0015_0.jpg", "cannot parse"),
        ("list_train.txt", "0000/0000_000_01_0303morning_0015_0.jpg zero", "cannot parse"),
        ("list_train.txt", "0000_000_01_0303morning_0015_0.jpg 0", "cannot parse"),
        ("list_train.txt", "0000/0000_000_16_0303morning_0099_0.jpg 0", r"camera 16 .*1..15"),
        ("list_train.txt", "0000/0000_000_01_0303morning_0099_0.jpg 3", "label 3 .*folder 0000"),
        ("list_query.txt", "0001/0000_000_01_0303morning_0099_0.jpg 1", "file-name pid 0 .*0001"),
        ("list_gallery.txt", "0001/0001_009_01_0303morning_0099_0.jpg 1", "does not exist"),
    ],
)
def test_msmt17_bad_list_line_names_file_and_line(
    msmt17_root: Path, list_name: str, line: str, message: str
) -> None:
    path = msmt17_root / "MSMT17_V1" / list_name
    number = _append(path, line)
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_dataset("msmt17", msmt17_root)
    assert f"{path}, line {number}:" in str(info.value)


def test_msmt17_duplicate_entry(msmt17_root: Path) -> None:
    path = msmt17_root / "MSMT17_V1" / "list_query.txt"
    _append(path, "0000/0000_000_01_0304morning_0010_0.jpg 0")
    with pytest.raises(DatasetFormatError, match=r"listed more than once"):
        load_dataset("msmt17", msmt17_root)


def test_msmt17_empty_gallery_list(msmt17_root: Path) -> None:
    path = msmt17_root / "MSMT17_V1" / "list_gallery.txt"
    path.write_text("\n")
    with pytest.raises(DatasetFormatError, match=rf"{path}: the list_gallery split is empty"):
        load_dataset("msmt17", msmt17_root)


def test_msmt17_verify_images(msmt17_root: Path) -> None:
    bad = msmt17_root / "MSMT17_V1" / "test" / "0001" / "0001_002_13_0304noon_0014_0.jpg"
    bad.write_bytes(b"\xff\xd8 garbage")
    with pytest.raises(DatasetFormatError, match=rf"{bad}: unreadable image"):
        load_dataset("msmt17", msmt17_root, verify_images=True)
