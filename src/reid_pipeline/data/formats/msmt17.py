"""MSMT17 (V1, and V2 with masked faces).

Reference: L. Wei, S. Zhang, W. Gao, Q. Tian, "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018.

Layout: ``MSMT17_V1/{train, test, list_train.txt, list_val.txt, list_query.txt,
list_gallery.txt}``; V2 is ``MSMT17_V2/`` with ``mask_train_v2/`` and ``mask_test_v2/`` in place of
``train/`` and ``test/``. ``list_train`` / ``list_val`` name files under the train folder,
``list_query`` / ``list_gallery`` files under the test folder.
List line ``0000/0000_000_01_0303morning_0015_0.jpg 0``: ``<pid folder>/<pid>_<index>_<camera>_
<date+time>_<frame>_<n>.jpg`` and a 0-based label. camid = third ``_`` field - 1 (15 cameras).
Training pids come from the label column, query / gallery pids from the file name's first field;
both must agree with the pid folder.

``version``: ``"v1"`` or ``"v2"``; by default whichever folder exists, V1 preferred.
``combine_val``: also put ``list_val`` into train (the published 32,621 training images are
train + val; the standard protocol trains on ``list_train`` alone).

Statistics (4,101 ids, 126,441 images, 15 cameras):
    train    1,041 ids  30,248 images (list_train) + 2,373 (list_val) = 32,621
    query    3,060 ids  11,659 images
    gallery  3,060 ids  82,161 images
"""

from __future__ import annotations

from pathlib import Path

from reid_pipeline.data.loaders import (
    DirIndex,
    check_unique_paths,
    find_dataset_dir,
    read_list_file,
    require_dir,
    require_records,
    resolve_entry,
)
from reid_pipeline.data.records import DatasetFormatError, Modality, Record, Splits

DATASET_DIRS = {"v1": "MSMT17_V1", "v2": "MSMT17_V2"}
IMAGE_DIRS = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}
NUM_CAMERAS = 15
_EXAMPLE = "0000/0000_000_01_0303morning_0015_0.jpg 0"


def _find(root: Path, version: str | None) -> tuple[Path, str]:
    if version is not None:
        if version not in DATASET_DIRS:
            raise ValueError(
                f"option 'version' must be one of {sorted(DATASET_DIRS)} or None, got {version!r}"
            )
        dirname = DATASET_DIRS[version]
        return find_dataset_dir(root, dirname=dirname, markers=IMAGE_DIRS[version]), version
    for candidate in ("v1", "v2"):  # V1 preferred
        dirname = DATASET_DIRS[candidate]
        if (root / dirname).is_dir() or root.name == dirname:
            return find_dataset_dir(root, dirname=dirname, markers=()), candidate
    for candidate in ("v1", "v2"):  # root is the dataset folder under another name
        if (root / IMAGE_DIRS[candidate][0]).is_dir() and (root / "list_train.txt").is_file():
            return root, candidate
    raise DatasetFormatError(
        f"{root}: no MSMT17 folder found; expected {root}/MSMT17_V1/ or {root}/MSMT17_V2/ "
        "(or one of them passed as root)"
    )


def _read_list(
    dataset_dir: Path, list_name: str, image_dir: str, *, train: bool, index: DirIndex
) -> list[Record]:
    list_path = dataset_dir / list_name
    records = []
    for entry in read_list_file(list_path, example=_EXAMPLE):
        parts = entry.relpath.split("/")
        fields = parts[-1].split("_")
        ok = len(parts) == 2 and parts[0].isdigit() and len(fields) >= 4
        ok = ok and fields[0].isdigit() and fields[2].isdigit()
        if not ok:
            raise DatasetFormatError(
                f"{list_path}, line {entry.line}: cannot parse {entry.relpath!r}; expected "
                f"'<pid folder>/<pid>_<index>_<camera>_<time>_...jpg' like {_EXAMPLE!r}"
            )
        folder_pid, name_pid, camera = int(parts[0]), int(fields[0]), int(fields[2])
        pid = entry.label if train else name_pid
        if pid != folder_pid or name_pid != folder_pid:
            source = f"label {entry.label}" if train else f"file-name pid {name_pid}"
            raise DatasetFormatError(
                f"{list_path}, line {entry.line}: {source} of {entry.relpath!r} does not match "
                f"its folder {parts[0]}; expected the same person id"
            )
        if not 1 <= camera <= NUM_CAMERAS:
            raise DatasetFormatError(
                f"{list_path}, line {entry.line}: camera {camera} of {entry.relpath!r} out of "
                f"range; expected 1..{NUM_CAMERAS}"
            )
        path = resolve_entry(dataset_dir / image_dir, entry, list_path=list_path, index=index)
        records.append(Record(path, pid, camera - 1, int(Modality.VISIBLE)))
    require_records(records, split=list_name.removesuffix(".txt"), source=list_path)
    check_unique_paths(records, source=list_path)
    return records


def load(root: Path, *, version: str | None = None, combine_val: bool = False) -> Splits:
    if not isinstance(combine_val, bool):
        raise ValueError(f"option 'combine_val' must be True or False, got {combine_val!r}")
    dataset_dir, version = _find(root, version)
    train_dir, test_dir = IMAGE_DIRS[version]
    for sub in (train_dir, test_dir):
        require_dir(dataset_dir / sub, expected=f"MSMT17 {version.upper()} image folder {sub}/")
    index = DirIndex()
    train_lists = ["list_train.txt", "list_val.txt"] if combine_val else ["list_train.txt"]
    train = [
        record
        for list_name in train_lists
        for record in _read_list(dataset_dir, list_name, train_dir, train=True, index=index)
    ]
    check_unique_paths(train, source=dataset_dir / "list_val.txt")
    query = _read_list(dataset_dir, "list_query.txt", test_dir, train=False, index=index)
    gallery = _read_list(dataset_dir, "list_gallery.txt", test_dir, train=False, index=index)
    return Splits(
        name="msmt17",
        root=str(dataset_dir),
        train=sorted(train),
        query=sorted(query),
        gallery=sorted(gallery),
        info={"num_cameras": NUM_CAMERAS, "version": version, "combine_val": combine_val},
    )
