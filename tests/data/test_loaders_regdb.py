"""RegDB loader on a tiny tree of the real layout (two trials)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reid_pipeline.data import DatasetFormatError, load_dataset


def _rel(records, base: Path) -> list[tuple[str, int, int, int]]:
    return [(str(Path(r.path).relative_to(base)), r.pid, r.camid, r.modality) for r in records]


def test_regdb_trial_1_records_exact(regdb_root: Path) -> None:
    splits = load_dataset("regdb", regdb_root)
    base = regdb_root / "RegDB"
    # train ids 1, 2 -> labels 0, 1 in both modalities; thermal camera is camid 1
    assert _rel(splits.train, base) == [
        ("Thermal/1/female_front_t_00010_1.bmp", 0, 1, 1),
        ("Thermal/1/female_front_t_00011_1.bmp", 0, 1, 1),
        ("Thermal/2/female_front_t_00020_2.bmp", 1, 1, 1),
        ("Thermal/2/female_front_t_00021_2.bmp", 1, 1, 1),
        ("Visible/1/female_front_v_00010_1.bmp", 0, 0, 0),
        ("Visible/1/female_front_v_00011_1.bmp", 0, 0, 0),
        ("Visible/2/female_front_v_00020_2.bmp", 1, 0, 0),
        ("Visible/2/female_front_v_00021_2.bmp", 1, 0, 0),
    ]
    # query = test thermal, gallery = test visible, folder pids (not the list labels 0, 1)
    assert _rel(splits.query, base) == [
        ("Thermal/3/female_front_t_00030_3.bmp", 3, 1, 1),
        ("Thermal/3/female_front_t_00031_3.bmp", 3, 1, 1),
        ("Thermal/4/female_front_t_00040_4.bmp", 4, 1, 1),
        ("Thermal/4/female_front_t_00041_4.bmp", 4, 1, 1),
    ]
    assert [(r.pid, r.camid, r.modality) for r in splits.gallery] == [(3, 0, 0)] * 2 + [
        (4, 0, 0)
    ] * 2
    assert splits.info["trial"] == 1
    assert splits.info["test_ids"] == [3, 4]
    assert splits.info["num_cameras"] == 2


def test_regdb_trial_selection(regdb_root: Path) -> None:
    splits = load_dataset("regdb", regdb_root, trial=2, relabel=False)
    assert sorted({r.pid for r in splits.train}) == [3, 4]
    assert sorted({r.pid for r in splits.query}) == [1, 2]
    assert sorted({r.pid for r in splits.gallery}) == [1, 2]
    assert splits.info["trial"] == 2


@pytest.mark.parametrize("trial", [0, 11, "1", 1.0, True])
def test_regdb_bad_trial(regdb_root: Path, trial: object) -> None:
    with pytest.raises(ValueError, match=r"'trial' must be an integer in 1..10"):
        load_dataset("regdb", regdb_root, trial=trial)


def test_regdb_missing_trial_file(regdb_root: Path) -> None:
    path = regdb_root / "RegDB" / "idx" / "train_visible_3.txt"
    with pytest.raises(DatasetFormatError, match=rf"{path}: missing file"):
        load_dataset("regdb", regdb_root, trial=3)


def test_regdb_missing_modality_folder(regdb_root: Path) -> None:
    shutil.rmtree(regdb_root / "RegDB" / "Thermal")
    with pytest.raises(DatasetFormatError, match=r"RegDB/Thermal: missing folder"):
        load_dataset("regdb", regdb_root)


@pytest.mark.parametrize(
    ("list_name", "line", "message"),
    [
        ("train_visible_1.txt", "Visible/1/female_front_v_00010_1.bmp", "cannot parse"),
        ("train_visible_1.txt", "Thermal/1/female_front_t_00010_1.bmp 0", "cannot parse"),
        ("train_visible_1.txt", "Visible/x/female_front_v_00010_1.bmp 0", "cannot parse"),
        ("train_thermal_1.txt", "/abs/Thermal/1/a.bmp 0", "cannot parse"),
        ("test_visible_1.txt", "Visible/3/missing.bmp 0", "does not exist"),
        ("test_visible_1.txt", "Visible/3/notes.txt 0", "not an image file"),
        ("test_thermal_1.txt", "Thermal/1/female_front_t_00010_1.bmp 0", "label 0 is used for"),
        ("train_visible_1.txt", "Visible/1/female_front_v_00010_1.bmp 7", "person 1 has label 7"),
    ],
)
def test_regdb_bad_list_line_names_file_and_line(
    regdb_root: Path, list_name: str, line: str, message: str
) -> None:
    path = regdb_root / "RegDB" / "idx" / list_name
    text = path.read_text() + line + "\n"
    path.write_text(text)
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_dataset("regdb", regdb_root)
    assert f"{path}, line {len(text.splitlines())}:" in str(info.value)


def test_regdb_train_test_overlap(regdb_root: Path) -> None:
    path = regdb_root / "RegDB" / "idx" / "test_visible_1.txt"
    path.write_text(path.read_text() + "Visible/1/female_front_v_00010_1.bmp 9\n")
    with pytest.raises(DatasetFormatError, match=r"person\(s\) \[1\] in both train and test"):
        load_dataset("regdb", regdb_root)


def test_regdb_empty_query_list(regdb_root: Path) -> None:
    path = regdb_root / "RegDB" / "idx" / "test_thermal_1.txt"
    path.write_text("")
    with pytest.raises(DatasetFormatError, match=rf"{path}: the test_thermal_1 split is empty"):
        load_dataset("regdb", regdb_root)


def test_regdb_verify_images(regdb_root: Path) -> None:
    bad = regdb_root / "RegDB" / "Visible" / "4" / "female_front_v_00041_4.bmp"
    bad.write_bytes(b"BM broken")
    with pytest.raises(DatasetFormatError, match=rf"{bad}: unreadable image"):
        load_dataset("regdb", regdb_root, verify_images=True)
