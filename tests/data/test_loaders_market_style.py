"""Market-1501, DukeMTMC-reID and CUHK03-NP loaders on tiny trees of the real layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reid_pipeline.data import DatasetFormatError, Record, load_dataset

MARKET = "Market-1501-v15.09.15"


def _rel(records: list[Record], base: Path) -> list[tuple[str, int, int, int]]:
    return [(str(Path(r.path).relative_to(base)), r.pid, r.camid, r.modality) for r in records]


def test_market1501_records_exact(market_root: Path) -> None:
    splits = load_dataset("market1501", market_root)
    base = market_root / MARKET
    assert splits.root == str(base)
    assert _rel(splits.train, base) == [
        ("bounding_box_train/0001_c1s1_000151_01.jpg", 0, 0, 0),
        ("bounding_box_train/0001_c2s1_000301_01.jpg", 0, 1, 0),
        ("bounding_box_train/0002_c1s1_000451_01.jpg", 1, 0, 0),
        ("bounding_box_train/0002_c3s1_000551_01.jpg", 1, 2, 0),
        ("bounding_box_train/0007_c6s1_000601_01.jpg", 2, 5, 0),
    ]
    assert _rel(splits.query, base) == [
        ("query/0001_c3s1_000701_00.jpg", 1, 2, 0),
        ("query/0002_c4s1_000801_00.jpg", 2, 3, 0),
        ("query/0007_c5s1_000901_00.jpg", 7, 4, 0),
    ]
    # junk (-1) dropped, distractor 0 kept, original pids
    assert _rel(splits.gallery, base) == [
        ("bounding_box_test/0000_c1s1_001201_01.jpg", 0, 0, 0),
        ("bounding_box_test/0001_c5s1_001301_01.jpg", 1, 4, 0),
        ("bounding_box_test/0002_c6s1_001401_01.jpg", 2, 5, 0),
        ("bounding_box_test/0007_c1s1_001501_01.jpg", 7, 0, 0),
    ]
    assert all(Path(r.path).is_absolute() for r in splits.gallery)
    assert splits.info == {
        "dataset": "market1501",
        "dataset_dir": str(base),
        "num_train_pids": 3,
        "num_train_images": 5,
        "num_query_images": 3,
        "num_gallery_images": 4,
        "relabel": True,
        "num_cameras": 6,
    }


def test_market1501_relabel_false_keeps_original_pids(market_root: Path) -> None:
    splits = load_dataset("market1501", market_root, relabel=False)
    assert [r.pid for r in splits.train] == [1, 1, 2, 2, 7]
    assert splits.info["num_train_pids"] == 3


def test_market1501_root_may_be_the_dataset_folder(market_root: Path) -> None:
    direct = load_dataset("market1501", market_root / MARKET)
    assert direct.train == load_dataset("market1501", str(market_root)).train


def test_dukemtmc_records_exact(duke_root: Path) -> None:
    splits = load_dataset("dukemtmc", duke_root)
    base = duke_root / "DukeMTMC-reID"
    assert _rel(splits.train, base) == [
        ("bounding_box_train/0005_c2_f0046985.jpg", 0, 1, 0),
        ("bounding_box_train/0005_c3_f0047000.jpg", 0, 2, 0),
        ("bounding_box_train/0009_c8_f0001000.jpg", 1, 7, 0),
    ]
    assert [(r.pid, r.camid) for r in splits.query] == [(5, 0), (9, 3)]
    assert [(r.pid, r.camid) for r in splits.gallery] == [(5, 4), (9, 6), (11, 5)]
    assert splits.info["num_cameras"] == 8


@pytest.mark.parametrize(
    ("variant", "counts", "gallery_pids"),
    [("detected", (3, 2, 2), [2, 4]), ("labeled", (2, 1, 3), [2, 4, 4])],
)
def test_cuhk03_variants(
    cuhk03_root: Path, variant: str, counts: tuple[int, int, int], gallery_pids: list[int]
) -> None:
    splits = load_dataset("cuhk03", cuhk03_root, variant=variant)
    assert (len(splits.train), len(splits.query), len(splits.gallery)) == counts
    assert [r.pid for r in splits.gallery] == gallery_pids
    assert all(f"/cuhk03-np/{variant}/" in r.path and r.path.endswith(".png") for r in splits.train)
    assert splits.info["variant"] == variant
    assert splits.info["num_cameras"] == 2


def test_cuhk03_default_is_detected(cuhk03_root: Path) -> None:
    splits = load_dataset("cuhk03", cuhk03_root)
    assert splits.info["variant"] == "detected"
    assert [(r.pid, r.camid) for r in splits.train] == [(0, 0), (0, 1), (1, 0)]


def test_cuhk03_bad_variant_is_value_error(cuhk03_root: Path) -> None:
    with pytest.raises(ValueError, match=r"'variant'.*\['detected', 'labeled'\].*'both'"):
        load_dataset("cuhk03", cuhk03_root, variant="both")


def test_cuhk03_missing_variant_folder(cuhk03_root: Path) -> None:
    shutil.rmtree(cuhk03_root / "cuhk03-np" / "labeled")
    with pytest.raises(DatasetFormatError, match=r"cuhk03-np/labeled: missing folder"):
        load_dataset("cuhk03", cuhk03_root, variant="labeled")


# --------------------------------------------------------------------------- malformed trees


def test_missing_dataset_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=rf"{tmp_path}/{MARKET}: dataset folder not found"):
        load_dataset("market1501", tmp_path)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"nowhere: dataset root does not exist"):
        load_dataset("market1501", tmp_path / "nowhere")


def test_missing_subfolder(market_root: Path) -> None:
    shutil.rmtree(market_root / MARKET / "query")
    with pytest.raises(DatasetFormatError, match=rf"{MARKET}/query: missing folder"):
        load_dataset("market1501", market_root)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("c1s1_000151_01.jpg", "file name does not parse"),
        ("--1_c1s1_000151_01.jpg", "file name does not parse"),
        ("0001c1s1_000151_01.jpg", "file name does not parse"),
        ("0003_c7s1_000151_01.jpg", r"camera 7 out of range; expected c1..c6"),
        ("0003_c0s1_000151_01.jpg", r"camera 0 out of range"),
        ("-2_c1s1_000151_01.jpg", r"person id -2 out of range"),
        (
            "1502_c1s1_000151_01.jpg",
            r"person id 1502 out of range; expected -1 \(junk\) or 0..1501",
        ),
        ("0000_c1s1_000151_01.jpg", r"distractor id 0 in bounding_box_train/"),
    ],
)
def test_bad_file_name_names_the_file(
    market_root: Path, image_writer, name: str, message: str
) -> None:
    bad = image_writer(market_root / MARKET / "bounding_box_train" / name)
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_dataset("market1501", market_root)
    assert str(bad) in str(info.value)


def test_duke_camera_9_out_of_range(duke_root: Path, image_writer) -> None:
    image_writer(duke_root / "DukeMTMC-reID" / "query" / "0005_c9_f0000001.jpg")
    with pytest.raises(DatasetFormatError, match=r"0005_c9_f0000001.jpg: camera 9 .*c1..c8"):
        load_dataset("dukemtmc", duke_root)


def test_empty_query(market_root: Path) -> None:
    query = market_root / MARKET / "query"
    for path in query.glob("*.jpg"):
        path.unlink()
    with pytest.raises(DatasetFormatError, match=rf"{query}: the query split is empty"):
        load_dataset("market1501", market_root)


def test_gallery_of_only_junk_is_empty(market_root: Path) -> None:
    gallery = market_root / MARKET / "bounding_box_test"
    for path in gallery.glob("0*.jpg"):
        path.unlink()
    with pytest.raises(DatasetFormatError, match="bounding_box_test split is empty"):
        load_dataset("market1501", market_root)


def test_non_image_files_are_ignored(market_root: Path) -> None:
    train = market_root / MARKET / "bounding_box_train"
    (train / "notes.txt").write_text("not an image")
    (train / "._0001_c1s1_000151_01.jpg").write_bytes(b"\x00")  # macOS resource fork
    (train / "subfolder").mkdir()
    assert len(load_dataset("market1501", market_root, verify_images=True).train) == 5


def test_upper_case_extension_is_an_image(market_root: Path, image_writer) -> None:
    image_writer(market_root / MARKET / "query" / "0001_c6s1_000999_00.JPG")
    assert len(load_dataset("market1501", market_root).query) == 4


def test_verify_images_names_the_corrupt_file(market_root: Path) -> None:
    bad = market_root / MARKET / "bounding_box_test" / "0002_c6s1_001401_01.jpg"
    bad.write_bytes(b"this is not a jpeg")
    assert len(load_dataset("market1501", market_root).gallery) == 4  # not checked by default
    with pytest.raises(DatasetFormatError, match="unreadable image") as info:
        load_dataset("market1501", market_root, verify_images=True)
    assert str(bad) in str(info.value)


def test_verify_images_catches_empty_file(market_root: Path) -> None:
    bad = market_root / MARKET / "query" / "0002_c4s1_000801_00.jpg"
    bad.write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=rf"{bad}: unreadable image"):
        load_dataset("market1501", market_root, verify_images=True)


def test_verify_images_catches_broken_png(cuhk03_root: Path) -> None:
    bad = cuhk03_root / "cuhk03-np" / "detected" / "query" / "0002_c1_1.png"
    data = bad.read_bytes()
    bad.write_bytes(data[:20] + b"\x00" * 8 + data[28:])  # corrupt the IHDR chunk (CRC fails)
    with pytest.raises(DatasetFormatError, match=rf"{bad}: unreadable image"):
        load_dataset("cuhk03", cuhk03_root, verify_images=True)
