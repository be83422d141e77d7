"""Fixtures writing tiny trees of the real dataset layouts into ``tmp_path``.

Every fixture returns the root folder that CONTAINS the dataset's own folder (as ``data/01_raw``
does) and writes real, tiny image files (8x4 JPEG / PNG / BMP encoded once with PIL), plus the
clutter real downloads carry (``Thumbs.db``, ``.DS_Store``). The expected contents are spelled out
next to each tree so the tests can check counts and record fields exactly.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import pytest
from PIL import Image

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}


@cache
def image_bytes(suffix: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 8), (120, 30, 200)).save(buffer, format=_FORMATS[suffix.lower()])
    return buffer.getvalue()


def write_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(path.suffix))
    return path


def write_clutter(folder: Path) -> None:
    """Non-image files real downloads contain; loaders must ignore them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Thumbs.db").write_bytes(b"\x00\x01")
    (folder / ".DS_Store").write_bytes(b"\x00")
    (folder / "desktop.ini").write_text("[.ShellClassInfo]\n")


# --------------------------------------------------------------------------- Market-style

# Market-1501: train 5 images / 3 ids (1, 2, 7); query 3 / 3 ids; gallery 4 kept (ids 1, 2, 7 and
# distractor 0) + 2 junk (-1) dropped.
MARKET_TRAIN = [
    "0001_c1s1_000151_01.jpg",
    "0001_c2s1_000301_01.jpg",
    "0002_c1s1_000451_01.jpg",
    "0002_c3s1_000551_01.jpg",
    "0007_c6s1_000601_01.jpg",
]
MARKET_QUERY = ["0001_c3s1_000701_00.jpg", "0002_c4s1_000801_00.jpg", "0007_c5s1_000901_00.jpg"]
MARKET_GALLERY = [
    "-1_c2s1_001001_03.jpg",
    "-1_c3s1_001101_02.jpg",
    "0000_c1s1_001201_01.jpg",
    "0001_c5s1_001301_01.jpg",
    "0002_c6s1_001401_01.jpg",
    "0007_c1s1_001501_01.jpg",
]

# DukeMTMC-reID: train 3 / 2 ids (5, 9); query 2; gallery 3 (incl. camera 8).
DUKE_TRAIN = ["0005_c2_f0046985.jpg", "0005_c3_f0047000.jpg", "0009_c8_f0001000.jpg"]
DUKE_QUERY = ["0005_c1_f0050000.jpg", "0009_c4_f0002000.jpg"]
DUKE_GALLERY = ["0005_c5_f0060000.jpg", "0009_c7_f0003000.jpg", "0011_c6_f0004000.jpg"]

# CUHK03-NP (.png): detected train 3 / query 2 / gallery 2; labeled train 2 / query 1 / gallery 3.
CUHK03 = {
    "detected": (
        ["0001_c1_1.png", "0001_c2_2.png", "0003_c1_1.png"],
        ["0002_c1_1.png", "0004_c2_1.png"],
        ["0002_c2_2.png", "0004_c1_2.png"],
    ),
    "labeled": (
        ["0001_c1_1.png", "0003_c2_1.png"],
        ["0002_c1_1.png"],
        ["0002_c2_1.png", "0004_c1_1.png", "0004_c2_2.png"],
    ),
}


def write_market_style(
    dataset_dir: Path, train: list[str], query: list[str], gallery: list[str]
) -> Path:
    for sub, names in (
        ("bounding_box_train", train),
        ("query", query),
        ("bounding_box_test", gallery),
    ):
        write_clutter(dataset_dir / sub)
        for name in names:
            write_image(dataset_dir / sub / name)
    return dataset_dir


@pytest.fixture
def market_root(tmp_path: Path) -> Path:
    dataset_dir = tmp_path / "Market-1501-v15.09.15"
    write_market_style(dataset_dir, MARKET_TRAIN, MARKET_QUERY, MARKET_GALLERY)
    write_image(dataset_dir / "gt_bbox" / "0001_c1s1_000151_00.jpg")  # not read
    return tmp_path


@pytest.fixture
def duke_root(tmp_path: Path) -> Path:
    write_market_style(tmp_path / "DukeMTMC-reID", DUKE_TRAIN, DUKE_QUERY, DUKE_GALLERY)
    return tmp_path


@pytest.fixture
def cuhk03_root(tmp_path: Path) -> Path:
    for variant, (train, query, gallery) in CUHK03.items():
        write_market_style(tmp_path / "cuhk03-np" / variant, train, query, gallery)
    return tmp_path


# --------------------------------------------------------------------------- MSMT17

# (relative path under the image folder, label). Train ids 0, 1, 2; test ids 0, 1 (own numbering).
MSMT_TRAIN = [
    ("0000/0000_000_01_0303morning_0015_0.jpg", 0),
    ("0000/0000_001_05_0303noon_0020_1.jpg", 0),
    ("0001/0001_000_15_0303afternoon_0100_0.jpg", 1),
    ("0001/0001_001_02_0303morning_0110_0.jpg", 1),
]
MSMT_VAL = [
    ("0000/0000_002_03_0303noon_0030_0.jpg", 0),
    ("0002/0002_000_07_0303noon_0040_0.jpg", 2),
]
MSMT_QUERY = [
    ("0000/0000_000_01_0304morning_0010_0.jpg", 0),
    ("0001/0001_000_11_0304noon_0011_0.jpg", 1),
]
MSMT_GALLERY = [
    ("0000/0000_001_04_0304morning_0012_0.jpg", 0),
    ("0001/0001_001_12_0304noon_0013_1.jpg", 1),
    ("0001/0001_002_13_0304noon_0014_0.jpg", 1),
]


def write_list(path: Path, entries: list[tuple[str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{rel} {label}\n" for rel, label in entries))


def write_msmt17(root: Path, version: str) -> Path:
    dataset_dir = root / ("MSMT17_V1" if version == "v1" else "MSMT17_V2")
    train_dir, test_dir = (
        ("train", "test") if version == "v1" else ("mask_train_v2", "mask_test_v2")
    )
    for folder, entries in (
        (train_dir, MSMT_TRAIN + MSMT_VAL),
        (test_dir, MSMT_QUERY + MSMT_GALLERY),
    ):
        for rel, _ in entries:
            write_image(dataset_dir / folder / rel)
    for name, entries in (
        ("list_train.txt", MSMT_TRAIN),
        ("list_val.txt", MSMT_VAL),
        ("list_query.txt", MSMT_QUERY),
        ("list_gallery.txt", MSMT_GALLERY),
    ):
        write_list(dataset_dir / name, entries)
    return dataset_dir


@pytest.fixture
def msmt17_root(tmp_path: Path) -> Path:
    write_msmt17(tmp_path, "v1")
    return tmp_path


# --------------------------------------------------------------------------- SYSU-MM01

# pid -> {camera: number of images}. train 1, 2; val 3; test 4, 5; id 6 is in no exp list (ignored).
SYSU_IMAGES = {
    1: {1: 2, 3: 1, 4: 1},
    2: {2: 1, 6: 2},
    3: {5: 1, 3: 1},
    4: {1: 2, 2: 1, 3: 2, 6: 1},
    5: {4: 1, 5: 1, 6: 1},
    6: {1: 1, 3: 1},
}
SYSU_IDS = {"train": "1,2", "val": "3\n", "test": " 4, 5,\n"}


@pytest.fixture
def sysu_root(tmp_path: Path) -> Path:
    dataset_dir = tmp_path / "SYSU-MM01"
    for camera in range(1, 7):
        write_clutter(dataset_dir / f"cam{camera}")
    for pid, cameras in SYSU_IMAGES.items():
        for camera, count in cameras.items():
            for n in range(1, count + 1):
                write_image(dataset_dir / f"cam{camera}" / f"{pid:04d}" / f"{n:04d}.jpg")
    (dataset_dir / "exp").mkdir()
    for part, text in SYSU_IDS.items():
        (dataset_dir / "exp" / f"{part}_id.txt").write_text(text)
    return tmp_path


# --------------------------------------------------------------------------- RegDB

REGDB_PIDS = (1, 2, 3, 4)
REGDB_PER_MODALITY = 2
# trial -> (train pids, test pids)
REGDB_TRIALS = {1: ((1, 2), (3, 4)), 2: ((3, 4), (1, 2))}


def regdb_name(pid: int, modality: str, n: int) -> str:
    folder = "Visible" if modality == "visible" else "Thermal"
    letter = "v" if modality == "visible" else "t"
    return f"{folder}/{pid}/female_front_{letter}_{pid * 10 + n:05d}_{pid}.bmp"


@pytest.fixture
def regdb_root(tmp_path: Path) -> Path:
    dataset_dir = tmp_path / "RegDB"
    for pid in REGDB_PIDS:
        for modality in ("visible", "thermal"):
            for n in range(REGDB_PER_MODALITY):
                write_image(dataset_dir / regdb_name(pid, modality, n))
    for trial, (train_pids, test_pids) in REGDB_TRIALS.items():
        for part, pids in (("train", train_pids), ("test", test_pids)):
            for modality in ("visible", "thermal"):
                entries = [
                    (regdb_name(pid, modality, n), label)
                    for label, pid in enumerate(pids)
                    for n in range(REGDB_PER_MODALITY)
                ]
                write_list(dataset_dir / "idx" / f"{part}_{modality}_{trial}.txt", entries)
    return tmp_path


# --------------------------------------------------------------------------- LLCM

# (pid, camera, modality) -> images. Train ids 1, 2; test ids 3, 4 (NIR has no camera 3 in tests).
LLCM_TRAIN = [(1, 1, "vis"), (1, 2, "nir"), (1, 9, "vis"), (2, 4, "nir"), (2, 4, "vis")]
LLCM_TEST = [
    (3, 1, "vis"),
    (3, 2, "nir"),
    (3, 5, "vis"),
    (4, 6, "nir"),
    (4, 7, "nir"),
    (4, 8, "vis"),
]


def llcm_name(pid: int, camera: int, modality: str, n: int = 0) -> str:
    return f"{pid:04d}_c{camera:02d}_s{200000 + pid * 10 + n}_f{4000 + camera}_{modality}.jpg"


@pytest.fixture
def llcm_root(tmp_path: Path) -> Path:
    """Release layout: lists under idx/ point at vis|nir/<PPPP>/; test_vis|test_nir/cam<k>/<PPPP>/
    hold the per-camera copies; idx/test_id.txt lists the test ids."""
    dataset_dir = tmp_path / "LLCM"
    lists: dict[str, list[tuple[str, int]]] = {}
    for part, items in (("train", LLCM_TRAIN), ("test", LLCM_TEST)):
        labels = {pid: i for i, pid in enumerate(sorted({p for p, _, _ in items}))}
        for pid, camera, modality in items:
            rel = f"{modality}/{pid:04d}/{llcm_name(pid, camera, modality)}"
            write_image(dataset_dir / rel)
            lists.setdefault(f"{part}_{modality}", []).append((rel, labels[pid]))
            if part == "test":
                copy = f"test_{modality}/cam{camera}/{pid:04d}/{llcm_name(pid, camera, modality)}"
                write_image(dataset_dir / copy)
    for name, entries in lists.items():
        write_list(dataset_dir / "idx" / f"{name}.txt", entries)
    (dataset_dir / "idx" / "test_id.txt").write_text("3,4\n")
    return tmp_path


# --------------------------------------------------------------------------- own data

# folders: identities 0001, 0002 train; 0003 in query and gallery, 0004 gallery only (distractor).
# Camera from the file name (c<N> / cam<N>, any case).
FOLDERS = {
    "train": {
        "0001": ["0001_c1s1_000151_01.jpg", "frame7_c2.jpg"],
        "0002": ["cam2_0001.png", "cam3_0002.png"],
    },
    "query": {"0003": ["0003_c1s1_000701_00.jpg"]},
    "gallery": {"0003": ["0003_c2s1_001301_01.jpg", "x-C4.bmp"], "0004": ["cam1_77.jpg"]},
}

# manifest.csv (header = line 1): train 3 images / 2 ids; query 1; gallery 2 (one infrared).
MANIFEST = [
    ("img/a.jpg", 10, 0, "train", "visible"),
    ("img/b.jpg", 10, 1, "train", "0"),
    ("img/c.png", 12, 2, "train", "visible"),
    ("img/q/d.jpg", 20, 0, "query", "visible"),
    ("img/g/e.jpg", 20, 1, "gallery", "infrared"),
    ("img/g/f.jpg", 21, 3, "gallery", "1"),
]


def write_folders(root: Path) -> Path:
    for split, identities in FOLDERS.items():
        for identity, names in identities.items():
            for name in names:
                write_image(root / split / identity / name)
    write_clutter(root / "train" / "0001")
    return root


def write_manifest(folder: Path, rows=MANIFEST, *, header: str = "path,pid,camid,split,modality"):
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        path = Path(str(row[0]))
        if path.suffix.lower() in _FORMATS and not path.is_absolute():
            write_image(folder / path)
    lines = [header, *(",".join(str(v) for v in row) for row in rows)]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


@pytest.fixture
def folders_root(tmp_path: Path) -> Path:
    return write_folders(tmp_path / "my_reid_data")


@pytest.fixture
def manifest_root(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "my_manifest").parent


# --------------------------------------------------------------------------- writers for tests


@pytest.fixture
def image_writer():
    """``image_writer(path)`` writes a tiny valid image (format from the suffix)."""
    return write_image


@pytest.fixture
def list_writer():
    """``list_writer(path, [(relative path, label), ...])`` writes a list file."""
    return write_list


@pytest.fixture
def msmt17_writer():
    """``msmt17_writer(root, "v1" | "v2")`` writes the MSMT17 tree of that version under root."""
    return write_msmt17
