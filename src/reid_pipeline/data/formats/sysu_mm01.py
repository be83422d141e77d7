"""SYSU-MM01 (visible-infrared).

Reference: A. Wu, W.-S. Zheng, H.-X. Yu, S. Gong, J. Lai, "RGB-Infrared Cross-Modality Person
Re-Identification", ICCV 2017.

Layout: ``SYSU-MM01/cam{1..6}/<PPPP>/<NNNN>.jpg`` (4-digit, zero-padded pid folders; not every id
exists in every camera) and ``SYSU-MM01/exp/{train_id,val_id,test_id}.txt`` (one line of
comma-separated ids each; whitespace, newlines and trailing commas are tolerated).
Cameras 1, 2, 4, 5 are visible (1, 2 indoor), 3 and 6 near-infrared (3 indoor); camid = camera
number - 1. Id folders not named in ``exp/`` (the release has 22 ids seen in one modality only)
are not read.

Splits (the protocol of the paper and of the field's VI-ReID code):
    train    train_id + val_id = 395 ids: 22,258 visible + 11,909 infrared images (relabelled once,
             so a person has the same label in both modalities)
    query    all infrared images (cam3, cam6) of the 96 test ids: 3,803 images
    gallery  ALL visible images (cam1, 2, 4, 5) of the test ids; the evaluation protocol samples
             its single-/multi-shot galleries from them (``info["test_ids"]``,
             ``info["dataset_dir"]`` locate the official ``rand_perm_cam.mat`` sampling)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reid_pipeline.data.loaders import (
    find_dataset_dir,
    is_image_name,
    list_images,
    read_id_list,
    require_dir,
    require_records,
)
from reid_pipeline.data.records import DatasetFormatError, Modality, Record, Splits

DATASET_DIR = "SYSU-MM01"
NUM_CAMERAS = 6
VISIBLE_CAMERAS = (1, 2, 4, 5)
INFRARED_CAMERAS = (3, 6)
_CAM_DIR = re.compile(r"^cam(\d+)$")
_IMAGE_NAME = re.compile(r"^\d+\.\w+$")


def _camera_dirs(dataset_dir: Path) -> dict[int, Path]:
    cameras: dict[int, Path] = {}
    with os.scandir(dataset_dir) as it:
        for entry in it:
            match = _CAM_DIR.match(entry.name)
            if not (match and entry.is_dir()):
                continue
            camera = int(match.group(1))
            if not 1 <= camera <= NUM_CAMERAS or camera in cameras:
                raise DatasetFormatError(
                    f"{entry.path}: camera folder out of range; expected cam1..cam{NUM_CAMERAS}"
                )
            cameras[camera] = Path(entry.path)
    missing = [f"cam{c}" for c in range(1, NUM_CAMERAS + 1) if c not in cameras]
    if missing:
        raise DatasetFormatError(
            f"{dataset_dir / missing[0]}: missing camera folder(s) {missing}; expected "
            f"cam1..cam{NUM_CAMERAS} in {dataset_dir}"
        )
    return cameras


def _id_dirs(camera_dir: Path) -> dict[int, str]:
    """pid -> folder path; image files lying directly in the camera folder are a layout error."""
    dirs: dict[int, str] = {}
    with os.scandir(camera_dir) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if not entry.name.isdigit() or int(entry.name) in dirs:
                    raise DatasetFormatError(
                        f"{entry.path}: folder name does not parse (or repeats an id); expected a "
                        "4-digit person id such as 0001"
                    )
                dirs[int(entry.name)] = entry.path
            elif is_image_name(entry.name):
                raise DatasetFormatError(
                    f"{entry.path}: image outside a person folder; expected "
                    f"{camera_dir}/<PPPP>/<NNNN>.jpg"
                )
    return dirs


def load(root: Path) -> Splits:
    dataset_dir = find_dataset_dir(root, dirname=DATASET_DIR, markers=("exp", "cam1"))
    exp_dir = require_dir(
        dataset_dir / "exp", expected="exp/ with train_id.txt, val_id.txt and test_id.txt"
    )
    id_lists = {part: read_id_list(exp_dir / f"{part}_id.txt") for part in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = sorted(set(id_lists[a]) & set(id_lists[b]))
        if shared:
            raise DatasetFormatError(
                f"{exp_dir}: ids {shared[:10]} appear in both {a}_id.txt and {b}_id.txt; "
                "expected disjoint splits"
            )
    cameras = _camera_dirs(dataset_dir)
    id_dirs = {camera: _id_dirs(path) for camera, path in cameras.items()}

    images: dict[int, list[Record]] = {}
    for part, ids in id_lists.items():
        for pid in ids:
            records = []
            for camera in range(1, NUM_CAMERAS + 1):
                folder = id_dirs[camera].get(pid)
                if folder is None:
                    continue  # not every id is seen by every camera
                modality = Modality.INFRARED if camera in INFRARED_CAMERAS else Modality.VISIBLE
                for path in list_images(folder):
                    if not _IMAGE_NAME.match(os.path.basename(path)):
                        raise DatasetFormatError(
                            f"{path}: file name does not parse; expected a numbered image such "
                            "as 0001.jpg"
                        )
                    records.append(Record(path, pid, camera - 1, int(modality)))
            if not records:
                raise DatasetFormatError(
                    f"{exp_dir / f'{part}_id.txt'}: id {pid} has no images in any of "
                    f"{dataset_dir}/cam1..cam{NUM_CAMERAS}/{pid:04d}/; expected at least one"
                )
            images[pid] = records

    train = [r for pid in (*id_lists["train"], *id_lists["val"]) for r in images[pid]]
    test = [r for pid in id_lists["test"] for r in images[pid]]
    query = [r for r in test if r.modality == Modality.INFRARED]
    gallery = [r for r in test if r.modality == Modality.VISIBLE]
    require_records(query, split="query (infrared images of test ids)", source=dataset_dir)
    require_records(gallery, split="gallery (visible images of test ids)", source=dataset_dir)
    return Splits(
        name="sysu_mm01",
        root=str(dataset_dir),
        train=sorted(train),
        query=sorted(query),
        gallery=sorted(gallery),
        info={
            "num_cameras": NUM_CAMERAS,
            "visible_cameras": list(VISIBLE_CAMERAS),
            "infrared_cameras": list(INFRARED_CAMERAS),
            "train_ids": sorted(id_lists["train"]),
            "val_ids": sorted(id_lists["val"]),
            "test_ids": sorted(id_lists["test"]),
        },
    )
