"""The ``load_dataset`` dispatcher and the shared parsing / validation helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reid_pipeline import data
from reid_pipeline.data import DatasetFormatError
from reid_pipeline.data.loaders import (
    DirIndex,
    dataset_names,
    list_images,
    load_dataset,
    read_id_list,
    read_list_file,
    verify_images,
)

ALL = [
    "cuhk03",
    "dukemtmc",
    "folders",
    "llcm",
    "manifest",
    "market1501",
    "msmt17",
    "regdb",
    "sysu_mm01",
]


def test_public_reexport_and_names() -> None:
    assert data.load_dataset is load_dataset
    assert dataset_names() == ALL


def test_unknown_dataset_lists_the_accepted_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'market'; expected one of \['cuhk03'"):
        load_dataset("market", tmp_path)


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("market1501", "['relabel', 'verify_images']"),
        ("cuhk03", "['relabel', 'variant', 'verify_images']"),
        ("msmt17", "['combine_val', 'relabel', 'verify_images', 'version']"),
        ("regdb", "['relabel', 'trial', 'verify_images']"),
        ("llcm", "['relabel', 'test_source', 'verify_images']"),
        ("sysu_mm01", "['relabel', 'verify_images']"),
        ("manifest", "['relabel', 'verify_images']"),
        ("folders", "['relabel', 'verify_images']"),
    ],
)
def test_unknown_option_names_it_and_lists_accepted(
    tmp_path: Path, name: str, accepted: str
) -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['mode'\]") as info:
        load_dataset(name, tmp_path, mode="all")
    assert f"accepted options: {accepted}" in str(info.value)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("option", ["verify_images", "relabel"])
def test_common_options_must_be_bool(market_root: Path, option: str) -> None:
    with pytest.raises(ValueError, match=rf"option '{option}' must be True or False, got 1"):
        load_dataset("market1501", market_root, **{option: 1})


def test_root_must_be_a_path() -> None:
    with pytest.raises(ValueError, match="root must be a path"):
        load_dataset("market1501", 42)  # type: ignore[arg-type]


def test_root_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "archive.zip"
    file.write_bytes(b"PK")
    with pytest.raises(DatasetFormatError, match=rf"{file}: dataset root does not exist"):
        load_dataset("regdb", file)


def test_relative_root_gives_absolute_paths(
    market_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(market_root)
    splits = load_dataset("market1501", ".")
    assert splits.train[0].path == str(
        market_root / "Market-1501-v15.09.15" / "bounding_box_train" / "0001_c1s1_000151_01.jpg"
    )


def test_id_list_is_lenient_on_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("\ufeff 1, 2 ,3,\r\n4\n\n5,,\n")
    assert read_id_list(path) == [1, 2, 3, 4, 5]


def test_id_list_errors(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("1,2,2,3")
    with pytest.raises(DatasetFormatError, match=rf"{path}: id\(s\) \[2\] listed more than once"):
        read_id_list(path)
    path.write_text(" ,\n")
    with pytest.raises(DatasetFormatError, match=rf"{path}: no ids"):
        read_id_list(path)
    path.write_bytes(b"\xff\xfe1\x002\x00")
    with pytest.raises(DatasetFormatError, match=rf"{path}: cannot read as UTF-8"):
        read_id_list(path)


def test_list_file_tolerates_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"a/b.jpg 0\r\n\r\n  c/d.jpg   12  \r\n")
    entries = read_list_file(path, example="a/b.jpg 0")
    assert entries == [(1, "a/b.jpg", 0), (3, "c/d.jpg", 12)]


@pytest.mark.parametrize(
    "line", ["a/b.jpg", "a/b.jpg 1 2", "a/b.jpg one", "../b.jpg 1", "/b.jpg 1"]
)
def test_list_file_bad_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "list.txt"
    path.write_text(f"a/ok.jpg 0\n{line}\n")
    with pytest.raises(DatasetFormatError, match=rf"{path}, line 2: cannot parse") as info:
        read_list_file(path, example="a/ok.jpg 0")
    assert "'a/ok.jpg 0'" in str(info.value)  # the expected form is quoted


def test_list_images_sorted_and_filtered(tmp_path: Path, image_writer) -> None:
    for name in ["b.JPG", "a.png", "c.bmp", "d.jpeg"]:
        image_writer(tmp_path / name)
    for name in ["Thumbs.db", ".DS_Store", "desktop.ini", "e.gif", ".f.jpg", "readme.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "g.jpg").mkdir()  # a folder with an image name is not a file
    names = [Path(p).name for p in list_images(tmp_path)]
    assert names == ["a.png", "b.JPG", "c.bmp", "d.jpeg"]
    with pytest.raises(DatasetFormatError, match=r"nope: missing folder"):
        list_images(tmp_path / "nope")


def test_dir_index(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    index = DirIndex()
    assert index.exists(str(tmp_path / "x.jpg"))
    assert not index.exists(str(tmp_path / "y.jpg"))
    assert not index.exists(str(tmp_path / "sub"))
    assert not index.exists(str(tmp_path / "missing" / "x.jpg"))


def test_verify_images_reports_first_bad_file_in_order(tmp_path: Path, image_writer) -> None:
    good = [str(image_writer(tmp_path / f"{i:03d}.png")) for i in range(50)]
    bad_a, bad_b = tmp_path / "bad_a.jpg", tmp_path / "bad_b.jpg"
    bad_a.write_bytes(b"nope")
    bad_b.write_bytes(b"")
    verify_images(good)  # no error
    with pytest.raises(DatasetFormatError, match=rf"{bad_a}: unreadable image"):
        verify_images([*good[:10], str(bad_a), *good[10:], str(bad_b)], workers=3)
    with pytest.raises(DatasetFormatError, match=rf"{tmp_path / 'gone.jpg'}: unreadable image"):
        verify_images([str(tmp_path / "gone.jpg")])
    with pytest.raises(ValueError, match="workers must be >= 1"):
        verify_images(good, workers=0)


def test_library_does_not_import_kedro() -> None:
    code = (
        "import sys, reid_pipeline.data.loaders, reid_pipeline.data.formats.llcm; "
        "print('kedro' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("name", "fixture"),
    [
        ("market1501", "market_root"),
        ("dukemtmc", "duke_root"),
        ("cuhk03", "cuhk03_root"),
        ("msmt17", "msmt17_root"),
        ("sysu_mm01", "sysu_root"),
        ("regdb", "regdb_root"),
        ("llcm", "llcm_root"),
        ("manifest", "manifest_root"),
        ("folders", "folders_root"),
    ],
)
def test_every_loader_info_is_json_and_output_deterministic(
    request: pytest.FixtureRequest, name: str, fixture: str
) -> None:
    root = request.getfixturevalue(fixture)
    splits = load_dataset(name, root)
    info = json.loads(json.dumps(splits.info))
    assert info["dataset"] == name
    assert info["dataset_dir"] == splits.root
    assert info["num_train_pids"] == len({r.pid for r in splits.train})
    assert sorted({r.pid for r in splits.train}) == list(range(info["num_train_pids"]))
    assert all(0 <= r.camid < info["num_cameras"] for r in splits.train + splits.gallery)
    for part in (splits.train, splits.query, splits.gallery):
        assert [r.path for r in part] == sorted(r.path for r in part)
        assert all(Path(r.path).is_file() for r in part)
    again = load_dataset(name, root)
    assert (again.train, again.query, again.gallery) == (splits.train, splits.query, splits.gallery)
