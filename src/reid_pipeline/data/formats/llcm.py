"""LLCM, the Low-Light Cross-Modality benchmark (visible / near-infrared).

Reference: Y. Zhang, H. Wang, "Diverse Embedding Expansion Network and Low-Light Cross-Modality
Benchmark for Visible-Infrared Person Re-identification", CVPR 2023 (DEEN).

Statistics: 46,767 images of 1,064 ids from 9 cameras. Train 713 ids (16,946 VIS + 13,975 NIR =
30,921 images); test 351 ids (8,680 VIS + 7,166 NIR = 15,846 images). Cameras are numbered 1..9
in both modalities (the test NIR folders have no cam3); camid = camera number - 1.

Layout (checked against public VI-ReID code that reads the release: DEEN's test script and the
data loaders derived from it):
- ``LLCM/idx/train_vis.txt``, ``train_nir.txt``: ``<path> <label>`` lines, paths relative to
  ``LLCM/`` such as ``nir/0351/0351_c06_s200656_f4830_nir.jpg`` (``vis/<PPPP>/..._vis.jpg``).
- ``LLCM/idx/test_vis.txt``, ``test_nir.txt``: the same format for the test images; the release
  points them at ``vis/<PPPP>/`` / ``nir/<PPPP>/`` (third-last component ``vis`` / ``nir``).
- ``LLCM/test_vis/cam<k>/<PPPP>/<file>``, ``LLCM/test_nir/cam<k>/<PPPP>/<file>``: a per-camera copy
  of the test images (byte-identical), which DEEN's test script lists together with
  ``LLCM/idx/test_id.txt`` (one line of comma-separated test ids).
- File name ``<PPPP>_c<CC>_s<digits>_f<digits>_<vis|nir>.jpg``.

``test_source`` chooses where query / gallery come from: ``"lists"`` (``idx/test_*.txt``),
``"folders"`` (``test_*/cam<k>/<PPPP>/`` restricted to ``test_id.txt`` when present) or ``"auto"``
(the default: lists when both exist, else folders). Within one (person, camera) both give the same
files in the same sorted order, so the protocol's per-camera gallery sampling is the same.

Parsing uses only the last path components (never a search for "cam" in the whole path): the
file name ``^(\\d+)_c(\\d+)_`` gives pid and camera, which must match the ``<PPPP>`` folder and the
``cam<k>`` folder above it where there is one; a ``_vis`` / ``_nir`` name suffix must match the
list's modality. List labels must name one person each; pids come from the file names (query /
gallery keep them, training pids are relabelled). query = test NIR, gallery = test VIS (the
protocol samples one VIS image per (id, camera) and also evaluates the swapped direction).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reid_pipeline.data.loaders import (
    DirIndex,
    check_label_mapping,
    check_unique_paths,
    find_dataset_dir,
    list_images,
    list_subdirs,
    read_id_list,
    read_list_file,
    require_dir,
    require_records,
    resolve_entry,
)
from reid_pipeline.data.records import DatasetFormatError, Modality, Record, Splits

DATASET_DIR = "LLCM"
NUM_CAMERAS = 9
TEST_SOURCES = ("auto", "lists", "folders")
_NAME = re.compile(r"^(\d+)_c(\d+)_")
_CAM_DIR = re.compile(r"^cam(\d+)$")
_SUFFIX = {Modality.VISIBLE: "_vis", Modality.INFRARED: "_nir"}
_EXAMPLE = "nir/0351/0351_c06_s200656_f4830_nir.jpg 350"


def _parse(path: str, modality: Modality, where: str) -> Record:
    """Record from the last path components: ``[cam<k>/]<PPPP>/<PPPP>_c<CC>_...``."""
    parts = path.replace("\\", "/").split("/")
    name, folder = parts[-1], parts[-2] if len(parts) > 1 else ""
    match = _NAME.match(name)
    if not match:
        raise DatasetFormatError(
            f"{where}: file name {name!r} does not parse; expected "
            "'<PPPP>_c<CC>_s<digits>_f<digits>_<vis|nir>.jpg' like '0351_c06_s200656_f4830_nir.jpg'"
        )
    pid, camera = int(match.group(1)), int(match.group(2))
    if not folder.isdigit() or int(folder) != pid:
        raise DatasetFormatError(
            f"{where}: {name!r} lies in folder {folder!r}; expected its person folder {pid:04d}"
        )
    if not 1 <= camera <= NUM_CAMERAS:
        raise DatasetFormatError(
            f"{where}: camera {camera} of {name!r} out of range; expected c01..c{NUM_CAMERAS:02d}"
        )
    cam_dir = _CAM_DIR.match(parts[-3]) if len(parts) > 2 else None
    if cam_dir and int(cam_dir.group(1)) != camera:
        raise DatasetFormatError(
            f"{where}: {name!r} (camera {camera}) lies in {parts[-3]}/; expected cam{camera}/"
        )
    stem = os.path.splitext(name)[0]
    other = _SUFFIX[Modality(1 - modality)]
    if stem.endswith(other):
        raise DatasetFormatError(
            f"{where}: {name!r} is a {other[1:]} image in a {_SUFFIX[modality][1:]} list or folder"
        )
    return Record(path, pid, camera - 1, int(modality))


def _read_list(
    dataset_dir: Path, list_name: str, modality: Modality, index: DirIndex
) -> list[Record]:
    list_path = dataset_dir / "idx" / list_name
    entries = read_list_file(list_path, example=_EXAMPLE)
    records = []
    for entry in entries:
        where = f"{list_path}, line {entry.line}"
        record = _parse(entry.relpath, modality, where)
        path = resolve_entry(dataset_dir, entry, list_path=list_path, index=index)
        records.append(record._replace(path=path))
    check_label_mapping(zip(entries, (r.pid for r in records), strict=True), path=list_path)
    require_records(records, split=list_name.removesuffix(".txt"), source=list_path)
    check_unique_paths(records, source=list_path)
    return records


def _scan_test_folder(folder: Path, modality: Modality, test_ids: set[int] | None) -> list[Record]:
    require_dir(folder, expected=f"{folder.name}/cam<k>/<PPPP>/ test image folders")
    records = []
    for cam_name in list_subdirs(folder):
        match = _CAM_DIR.match(cam_name)
        if not match or not 1 <= int(match.group(1)) <= NUM_CAMERAS:
            raise DatasetFormatError(
                f"{folder / cam_name}: camera folder does not parse or is out of range; expected "
                f"cam1..cam{NUM_CAMERAS}"
            )
        for pid_name in list_subdirs(folder / cam_name):
            if not pid_name.isdigit():
                raise DatasetFormatError(
                    f"{folder / cam_name / pid_name}: folder name does not parse; expected a "
                    "4-digit person id such as 0003"
                )
            if test_ids is not None and int(pid_name) not in test_ids:
                continue
            for path in list_images(folder / cam_name / pid_name):
                records.append(_parse(path, modality, path))
    require_records(records, split=f"{folder.name} (test images)", source=folder)
    return records


def load(root: Path, *, test_source: str = "auto") -> Splits:
    if test_source not in TEST_SOURCES:
        raise ValueError(
            f"option 'test_source' must be one of {list(TEST_SOURCES)}, got {test_source!r}"
        )
    dataset_dir = find_dataset_dir(root, dirname=DATASET_DIR, markers=("idx",))
    idx_dir = require_dir(
        dataset_dir / "idx", expected="idx/ with train_vis.txt, train_nir.txt and the test lists"
    )
    index = DirIndex()
    train = _read_list(dataset_dir, "train_vis.txt", Modality.VISIBLE, index)
    train += _read_list(dataset_dir, "train_nir.txt", Modality.INFRARED, index)

    test_id_path = idx_dir / "test_id.txt"
    test_ids = read_id_list(test_id_path) if test_id_path.is_file() else None
    if test_source == "auto":
        lists_present = all((idx_dir / f"test_{m}.txt").is_file() for m in ("vis", "nir"))
        test_source = "lists" if lists_present else "folders"
    if test_source == "lists":
        query = _read_list(dataset_dir, "test_nir.txt", Modality.INFRARED, index)
        gallery = _read_list(dataset_dir, "test_vis.txt", Modality.VISIBLE, index)
    else:
        wanted = set(test_ids) if test_ids is not None else None
        query = _scan_test_folder(dataset_dir / "test_nir", Modality.INFRARED, wanted)
        gallery = _scan_test_folder(dataset_dir / "test_vis", Modality.VISIBLE, wanted)
    info: dict[str, object] = {"num_cameras": NUM_CAMERAS, "test_source": test_source}
    if test_ids is not None:
        info["test_ids"] = sorted(test_ids)
    return Splits(
        name="llcm",
        root=str(dataset_dir),
        train=sorted(train),
        query=sorted(query),
        gallery=sorted(gallery),
        info=info,
    )
