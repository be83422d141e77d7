"""Your own data: the ``manifest`` (CSV / Parquet) and ``folders`` (one folder per identity)
formats, their records, ``info`` and one clear error (or warning) per bad input."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import pytest
from tests.data.conftest import MANIFEST, write_folders, write_image, write_manifest

from reid_pipeline.data import load_dataset
from reid_pipeline.data.formats.folders import camera_of
from reid_pipeline.errors import DataError

# ----------------------------------------------------------------------------- manifest


def test_layout_errors_are_data_errors_printed_as_one_line() -> None:
    from reid_pipeline.data import DatasetFormatError
    from reid_pipeline.errors import ReidError

    assert issubclass(DatasetFormatError, DataError)
    assert issubclass(DatasetFormatError, ReidError)
    assert issubclass(DatasetFormatError, ValueError)  # older callers catching ValueError


def test_manifest_records_info_and_relabelling(manifest_root: Path) -> None:
    splits = load_dataset("manifest", manifest_root)
    base = manifest_root
    assert splits.info["dataset"] == "manifest"
    assert splits.info["manifest"] == str(base / "manifest.csv")
    assert [(Path(r.path).relative_to(base).as_posix(), r.pid, r.camid, r.modality)
            for r in splits.train] == [
        ("img/a.jpg", 0, 0, 0),
        ("img/b.jpg", 0, 1, 0),
        ("img/c.png", 1, 2, 0),
    ]  # fmt: skip
    assert [(r.pid, r.camid, r.modality) for r in splits.query] == [(20, 0, 0)]
    assert [(r.pid, r.camid, r.modality) for r in splits.gallery] == [(20, 1, 1), (21, 3, 1)]
    assert splits.info["num_cameras"] == 4
    assert splits.info["modalities"] == [0, 1]
    assert splits.info["num_query_without_gallery_identity"] == 0
    # no relabelling: the manifest's own training pids
    raw = load_dataset("manifest", manifest_root, relabel=False)
    assert sorted({r.pid for r in raw.train}) == [10, 12]


def test_manifest_root_may_name_the_file_and_parquet_reads_the_same(
    manifest_root: Path, tmp_path: Path
) -> None:
    csv = manifest_root / "manifest.csv"
    from_folder = load_dataset("manifest", manifest_root)
    from_file = load_dataset("manifest", csv)
    assert (from_file.train, from_file.query, from_file.gallery) == (
        from_folder.train,
        from_folder.query,
        from_folder.gallery,
    )
    frame = pd.read_csv(csv)
    frame["pid"] = frame["pid"].astype("int64")
    parquet = manifest_root / "other.parquet"
    frame.to_parquet(parquet)
    from_parquet = load_dataset("manifest", parquet)
    assert from_parquet.gallery == from_folder.gallery
    # a folder holding both default names is ambiguous
    frame.to_parquet(manifest_root / "manifest.parquet")
    with pytest.raises(DataError, match=r"holds both manifest.csv and manifest.parquet"):
        load_dataset("manifest", manifest_root)
    with pytest.raises(DataError, match=rf"{tmp_path}: no manifest found"):
        load_dataset("manifest", tmp_path)
    with pytest.raises(DataError, match=r"gone: dataset root does not exist"):
        load_dataset("manifest", tmp_path / "gone")


def test_parquet_row_numbers_and_float_pids(manifest_root: Path) -> None:
    frame = pd.read_csv(manifest_root / "manifest.csv")
    frame["pid"] = frame["pid"].astype("float64")  # what a missing value does to an int column
    frame.loc[4, "pid"] = float("nan")
    path = manifest_root / "m.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match=rf"{path}, row 5: pid nan is not an integer >= 0"):
        load_dataset("manifest", path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("img/nope.jpg", 1, 0, "train", "0"), r"line 8: image .*img/nope\.jpg does not exist"),
        (("img/a.jpg", 1, 0, "train", "0"), r"line 8: .*img/a\.jpg is already listed on line 2"),
        (("img/x.jpg", "p7", 0, "train", "0"), r"line 8: pid 'p7' is not an integer >= 0"),
        (("img/x.jpg", "1.5", 0, "train", "0"), r"line 8: pid '1\.5' is not an integer"),
        (("img/x.jpg", -3, 0, "train", "0"), r"line 8: pid '-3' is not an integer >= 0"),
        (("img/x.jpg", 1, "c2", "train", "0"), r"line 8: camid 'c2' is not an integer >= 0"),
        (("img/x.jpg", 1, "", "train", "0"), r"line 8: camid '' is not an integer >= 0"),
        (("img/x.jpg", 1, 0, "test", "0"), r"line 8: unknown split 'test'; expected one of"),
        (("img/x.jpg", 1, 0, "train", "thermal"), r"line 8: unknown modality 'thermal'"),
        (("img/x.txt", 1, 0, "train", "0"), r"line 8: 'img/x\.txt' is not an image file"),
        (("", 1, 0, "train", "0"), r"line 8: empty path"),
    ],
)
def test_manifest_bad_row_names_file_and_line(tmp_path: Path, row, message: str) -> None:
    if row[0] == "img/x.jpg":
        write_image(tmp_path / "m" / "img" / "x.jpg")
    manifest = write_manifest(tmp_path / "m", [*MANIFEST, row])
    if row[0] == "img/nope.jpg":
        (tmp_path / "m" / "img" / "nope.jpg").unlink()
    with pytest.raises(DataError, match=re.escape(str(manifest)) + ", " + message):
        load_dataset("manifest", manifest)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("path,pid,camid,modality", r"missing column\(s\) \['split'\]"),
        ("path,pid,cam_id,split,modality", r"missing column\(s\) \['camid'\]"),
        ("path,pid,camid,split,modalty", r"unknown column\(s\) \['modalty'\]"),
    ],
)
def test_manifest_columns_are_checked(tmp_path: Path, header: str, message: str) -> None:
    manifest = write_manifest(tmp_path, header=header)
    with pytest.raises(DataError, match=rf"{manifest}: {message}; expected columns"):
        load_dataset("manifest", manifest)


def test_manifest_empty_split_and_empty_file(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "a", [r for r in MANIFEST if r[3] != "query"])
    with pytest.raises(DataError, match=rf"{manifest}: the query split is empty"):
        load_dataset("manifest", manifest)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=rf"{empty}: empty manifest"):
        load_dataset("manifest", empty)
    other = tmp_path / "list.txt"
    other.write_text("x")
    with pytest.raises(DataError, match=rf"{other}: not a manifest"):
        load_dataset("manifest", other)


def test_manifest_optional_modality_and_absolute_paths(tmp_path: Path) -> None:
    elsewhere = write_image(tmp_path / "elsewhere" / "g.jpg")
    rows = [(p, pid, cam, split) for p, pid, cam, split, _ in MANIFEST]
    rows.append((str(elsewhere), 99, 0, "gallery"))
    manifest = write_manifest(tmp_path / "m", rows, header="path,pid,camid,split")
    splits = load_dataset("manifest", manifest)
    assert {r.modality for r in splits.train + splits.query + splits.gallery} == {0}
    assert str(elsewhere) in [r.path for r in splits.gallery]


def test_query_identity_absent_from_gallery_is_a_warning_with_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [*MANIFEST, ("img/q/h.jpg", 30, 0, "query", "0"), ("img/q/i.jpg", 31, 0, "query", "0")]
    manifest = write_manifest(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        splits = load_dataset("manifest", manifest)
    assert splits.info["num_query_without_gallery_identity"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("2 of 3 query images (2 identities) have no gallery image" in w for w in warnings)


def test_train_test_overlap_is_a_warning(tmp_path: Path, caplog) -> None:
    rows = [*MANIFEST, ("img/t.jpg", 20, 0, "train", "0")]
    manifest = write_manifest(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        splits = load_dataset("manifest", manifest)
    assert splits.info["num_identities_in_train_and_test"] == 1
    assert "1 identities appear in train and in query / gallery" in caplog.text


# ----------------------------------------------------------------------------- folders


def test_folders_records_cameras_and_info(folders_root: Path) -> None:
    splits = load_dataset("folders", folders_root, relabel=False)
    assert splits.info["dataset"] == "folders"
    assert splits.info["dataset_dir"] == str(folders_root)

    def rows(part):
        return [(Path(r.path).relative_to(folders_root).as_posix(), r.pid, r.camid) for r in part]

    assert rows(splits.train) == [
        ("train/0001/0001_c1s1_000151_01.jpg", 1, 0),
        ("train/0001/frame7_c2.jpg", 1, 1),
        ("train/0002/cam2_0001.png", 2, 1),
        ("train/0002/cam3_0002.png", 2, 2),
    ]
    assert rows(splits.query) == [("query/0003/0003_c1s1_000701_00.jpg", 3, 0)]
    assert rows(splits.gallery) == [
        ("gallery/0003/0003_c2s1_001301_01.jpg", 3, 1),
        ("gallery/0003/x-C4.bmp", 3, 3),
        ("gallery/0004/cam1_77.jpg", 4, 0),
    ]
    assert splits.info["num_cameras"] == 4
    assert "identity_names" not in splits.info
    assert all(r.modality == 0 for r in splits.train + splits.query + splits.gallery)
    assert {r.pid for r in load_dataset("folders", folders_root).train} == {0, 1}


def test_folder_names_that_are_not_numbers_map_in_sorted_order(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "bob" / "c1_1.jpg")
    write_image(tmp_path / "train" / "7" / "c1_1.jpg")
    write_image(tmp_path / "query" / "carol" / "c1_1.jpg")
    write_image(tmp_path / "gallery" / "carol" / "c2_1.jpg")
    write_image(tmp_path / "gallery" / "alice" / "c2_1.jpg")
    splits = load_dataset("folders", tmp_path, relabel=False)
    names = splits.info["identity_names"]
    assert names == ["7", "alice", "bob", "carol"]
    assert [names[r.pid] for r in splits.query] == ["carol"]
    assert sorted(names[r.pid] for r in splits.gallery) == ["alice", "carol"]
    assert {names[r.pid] for r in splits.train} == {"7", "bob"}


def test_same_number_written_twice_is_refused(tmp_path: Path) -> None:
    write_folders(tmp_path)
    write_image(tmp_path / "gallery" / "003" / "c1_1.jpg")
    with pytest.raises(DataError, match=r"identity folders '0003' and '003' both mean person 3"):
        load_dataset("folders", tmp_path)


@pytest.mark.parametrize(
    ("name", "camera"),
    [
        ("0001_c1s1_001051_00.jpg", 1),
        ("0001_c6s2_000076_01", 6),
        ("cam3_0042.png", 3),
        ("frame12-C2.jpg", 2),
        ("x_cam10.jpg", 10),
        ("0005_c2_f0046985.jpg", 2),
        ("crop3.jpg", None),
        ("0001c1.jpg", None),
        ("camera.jpg", None),
        ("c1_x_c1.jpg", 1),
    ],
)
def test_camera_token(name: str, camera: int | None) -> None:
    assert camera_of(name) == camera


def test_camera_token_errors() -> None:
    with pytest.raises(DataError, match=r"a_c1_c2\.jpg: file name has several camera tokens"):
        camera_of("a_c1_c2.jpg")
    with pytest.raises(DataError, match=r"cam0_1\.jpg: camera 0 .* numbered from 1"):
        camera_of("cam0_1.jpg")


@pytest.mark.parametrize("split", ["train", "query", "gallery"])
def test_every_file_needs_a_camera(folders_root: Path, split: str) -> None:
    bad = write_image(folders_root / split / "0003" / "plain.jpg")
    with pytest.raises(DataError, match=rf"{bad}: no camera in the file name; expected c<N>"):
        load_dataset("folders", folders_root)


def test_folders_layout_errors(tmp_path: Path) -> None:
    root = write_folders(tmp_path / "a")
    stray = write_image(root / "query" / "0003_c1_9.jpg")
    with pytest.raises(DataError, match=rf"{stray}: image lies directly in query/"):
        load_dataset("folders", root)
    stray.unlink()
    (root / "gallery" / "0009").mkdir()
    with pytest.raises(DataError, match=r"gallery/0009: identity folder holds no image"):
        load_dataset("folders", root)
    write_image(root / "gallery" / "0009" / "deeper" / "c1_1.jpg")
    with pytest.raises(DataError, match=r"gallery/0009/deeper: folder inside an identity"):
        load_dataset("folders", root)

    empty_split = write_folders(tmp_path / "b")
    for child in (empty_split / "query").rglob("*"):
        if child.is_file():
            child.unlink()
    for child in sorted((empty_split / "query").iterdir()):
        child.rmdir()
    with pytest.raises(DataError, match=r"b/query: the query split is empty"):
        load_dataset("folders", empty_split)

    missing = write_folders(tmp_path / "c")
    for child in sorted((missing / "gallery").rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    (missing / "gallery").rmdir()
    with pytest.raises(DataError, match=r"c/gallery: missing folder"):
        load_dataset("folders", missing)
    with pytest.raises(DataError, match=rf"{tmp_path}: no train/, query/ or gallery/ folder"):
        load_dataset("folders", tmp_path)
    with pytest.raises(DataError, match=r"nope: dataset root does not exist"):
        load_dataset("folders", tmp_path / "nope")


def test_folders_verify_images_names_a_damaged_file(folders_root: Path) -> None:
    bad = folders_root / "gallery" / "0004" / "cam1_77.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    load_dataset("folders", folders_root)  # listing does not open images
    with pytest.raises(DataError, match=rf"{bad}: unreadable image"):
        load_dataset("folders", folders_root, verify_images=True)
