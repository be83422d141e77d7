"""RegDB (visible-thermal).

References: D. T. Nguyen, H. G. Hong, K. W. Kim, K. R. Park, "Person Recognition System Based on
a Combination of Body Images from Visible Light and Thermal Cameras", Sensors 2017 (the images);
M. Ye, X. Lan, J. Li, P. C. Yuen, "Hierarchical Discriminative Learning for Visible Thermal Person
Re-Identification", AAAI 2018 (the 10 random 206 / 206 identity splits, ``idx/`` files).

Layout: ``RegDB/{Visible,Thermal}/<pid>/*.bmp`` and
``RegDB/idx/{train,test}_{visible,thermal}_{trial}.txt`` for trial 1..10.
List line ``Visible/73/female_front_v_00753_73.bmp 7``: path relative to ``RegDB/`` whose first
folder is the modality and second the person id, then a 0-based label (one label per person).
Records: pid = the folder id (training pids are then relabelled), camid 0 for the visible camera
and 1 for the thermal camera, modality 0 / 1.

Splits of ``trial`` (default 1): train = train_visible + train_thermal (206 ids, 2,060 + 2,060
images); query = test_thermal, gallery = test_visible (206 ids, 2,060 images each); the protocol
also evaluates visible -> thermal by swapping them. 412 ids, 10 visible + 10 thermal images each.
"""

from __future__ import annotations

from pathlib import Path

from reid_pipeline.data.loaders import (
    DirIndex,
    check_label_mapping,
    check_unique_paths,
    find_dataset_dir,
    read_list_file,
    require_dir,
    require_records,
    resolve_entry,
)
from reid_pipeline.data.records import DatasetFormatError, Modality, Record, Splits

DATASET_DIR = "RegDB"
NUM_TRIALS = 10
NUM_CAMERAS = 2
_MODALITY_DIRS = {"visible": "Visible", "thermal": "Thermal"}
_MODALITIES = {"visible": Modality.VISIBLE, "thermal": Modality.INFRARED}
_EXAMPLE = "Visible/73/female_front_v_00753_73.bmp 7"


def _read_list(dataset_dir: Path, list_path: Path, modality: str, index: DirIndex) -> list[Record]:
    folder = _MODALITY_DIRS[modality]
    entries = read_list_file(list_path, example=_EXAMPLE)
    records, pids = [], []
    for entry in entries:
        parts = entry.relpath.split("/")
        if len(parts) != 3 or parts[0] != folder or not parts[1].isdigit():
            raise DatasetFormatError(
                f"{list_path}, line {entry.line}: cannot parse {entry.relpath!r}; expected "
                f"'{folder}/<pid>/<file>.bmp' like {_EXAMPLE!r}"
            )
        pid = int(parts[1])
        path = resolve_entry(dataset_dir, entry, list_path=list_path, index=index)
        camid = int(_MODALITIES[modality])  # one camera per modality: visible 0, thermal 1
        records.append(Record(path, pid, camid, int(_MODALITIES[modality])))
        pids.append(pid)
    check_label_mapping(zip(entries, pids, strict=True), path=list_path)
    require_records(records, split=list_path.stem, source=list_path)
    check_unique_paths(records, source=list_path)
    return records


def load(root: Path, *, trial: int = 1) -> Splits:
    if isinstance(trial, bool) or not isinstance(trial, int) or not 1 <= trial <= NUM_TRIALS:
        raise ValueError(f"option 'trial' must be an integer in 1..{NUM_TRIALS}, got {trial!r}")
    dataset_dir = find_dataset_dir(root, dirname=DATASET_DIR, markers=("idx", "Visible"))
    idx_dir = require_dir(
        dataset_dir / "idx", expected="idx/ with {train,test}_{visible,thermal}_<trial>.txt"
    )
    for sub in _MODALITY_DIRS.values():
        require_dir(dataset_dir / sub, expected=f"{sub}/<pid>/*.bmp image folders")
    index = DirIndex()
    lists = {
        (part, modality): _read_list(
            dataset_dir, idx_dir / f"{part}_{modality}_{trial}.txt", modality, index
        )
        for part in ("train", "test")
        for modality in ("visible", "thermal")
    }
    train = lists["train", "visible"] + lists["train", "thermal"]
    train_ids = {r.pid for r in train}
    test_ids = {r.pid for part in ("visible", "thermal") for r in lists["test", part]}
    shared = sorted(train_ids & test_ids)
    if shared:
        raise DatasetFormatError(
            f"{idx_dir}: trial {trial} puts person(s) {shared[:10]} in both train and test lists; "
            "expected disjoint identities"
        )
    return Splits(
        name="regdb",
        root=str(dataset_dir),
        train=sorted(train),
        query=sorted(lists["test", "thermal"]),
        gallery=sorted(lists["test", "visible"]),
        info={"num_cameras": NUM_CAMERAS, "trial": trial, "test_ids": sorted(test_ids)},
    )
