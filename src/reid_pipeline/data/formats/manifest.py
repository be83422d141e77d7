"""Your own crops, listed in a manifest: one CSV or Parquet table (docs/custom_data.md).

``root`` is the manifest file itself (``.csv`` or ``.parquet``) or a folder holding exactly one
``manifest.csv`` / ``manifest.parquet`` (both there is an error: which one is meant?). The
synthetic ``manifest`` layout writes ``synthetic_manifest/`` (``manifest.csv`` + ``images/``),
found under ``root`` as the benchmark folders are.

Columns (names exact, in any order; other columns are refused so a misspelt optional column is
not silently ignored):

- ``path``: the image, relative to the manifest's folder (``/`` or ``\\`` separated); absolute
  paths are used as they are.
- ``pid``: person id, an integer >= 0. Query and gallery keep it; training pids are relabelled
  ``0..N-1``. A gallery identity absent from the query acts as a distractor.
- ``camid``: camera index, an integer >= 0 (0-based, like Market-1501's ``c1`` -> 0). The
  evaluation removes a query's same-identity gallery images taken by the same camera.
- ``split``: ``train``, ``query`` or ``gallery``; each split needs at least one image.
- ``modality`` (optional, default visible): ``0`` / ``visible`` or ``1`` / ``infrared``.

Errors name the manifest and the CSV line (header = line 1) or Parquet row (1-based): a missing
image, a pid or camid that is not an integer >= 0, an unknown split or modality, a path listed
twice, an empty split. Query images whose identity has no gallery image are a warning with
their count (evaluation skips them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reid_pipeline.data.loaders import (
    IMAGE_EXTENSIONS,
    DirIndex,
    parse_integer,
    report_identity_overlap,
)
from reid_pipeline.data.records import DatasetFormatError, Modality, Record, Splits

SYNTHETIC_DIR = "synthetic_manifest"
MANIFEST_NAMES = ("manifest.csv", "manifest.parquet")
REQUIRED_COLUMNS = ("path", "pid", "camid", "split")
OPTIONAL_COLUMNS = ("modality",)
SPLITS = ("train", "query", "gallery")
_MODALITY_WORDS = {
    "0": Modality.VISIBLE,
    "visible": Modality.VISIBLE,
    "1": Modality.INFRARED,
    "infrared": Modality.INFRARED,
}


def find_manifest(root: Path) -> Path:
    """The manifest file ``root`` names (see the module docstring); one clear error otherwise."""
    if root.is_file():
        if root.suffix.lower() not in (".csv", ".parquet"):
            raise DatasetFormatError(
                f"{root}: not a manifest; expected a .csv or .parquet file with columns "
                f"{[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]}"
            )
        return root
    if not root.is_dir():
        raise DatasetFormatError(
            f"{root}: dataset root does not exist; expected a manifest file (.csv / .parquet) or "
            f"a folder holding {' or '.join(MANIFEST_NAMES)}"
        )
    for folder in (root, root / SYNTHETIC_DIR):
        found = [folder / name for name in MANIFEST_NAMES if (folder / name).is_file()]
        if len(found) > 1:
            raise DatasetFormatError(
                f"{folder}: holds both {MANIFEST_NAMES[0]} and {MANIFEST_NAMES[1]}; keep one, or "
                "name the file itself as the dataset root"
            )
        if found:
            return found[0]
    raise DatasetFormatError(
        f"{root}: no manifest found; expected {root}/manifest.csv or {root}/manifest.parquet (or "
        "name the manifest file itself as the dataset root)"
    )


def _read_table(path: Path) -> tuple[dict[str, list[Any]], int]:
    """Columns -> values, and the number of the first data row (CSV line 2, Parquet row 1)."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"
            )
            first = 2
        else:
            frame = pd.read_parquet(path)
            first = 1
    except pd.errors.EmptyDataError:
        raise DatasetFormatError(
            f"{path}: empty manifest; expected a header line 'path,pid,camid,split[,modality]'"
        ) from None
    except Exception as exc:  # parser / Arrow / permission errors: one line naming the file
        raise DatasetFormatError(
            f"{path}: cannot read the manifest ({type(exc).__name__}: {exc})"
        ) from None
    columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
    if missing or unknown or len(set(columns)) != len(columns):
        problem = (
            f"missing column(s) {missing}"
            if missing
            else f"unknown column(s) {unknown}"
            if unknown
            else "a column appears twice"
        )
        raise DatasetFormatError(
            f"{path}: {problem}; expected columns {list(REQUIRED_COLUMNS)} and optionally "
            f"{list(OPTIONAL_COLUMNS)} (found {columns})"
        )
    values = [frame[original].tolist() for original in frame.columns]
    return dict(zip(columns, values, strict=True)), first


def _integer(value: Any, *, column: str, where: str) -> int:
    number = parse_integer(value)
    if number is None or number < 0:
        raise DatasetFormatError(
            f"{where}: {column} {value!r} is not an integer >= 0; expected e.g. 3"
        )
    return number


def _modality(value: Any, where: str) -> Modality:
    number = parse_integer(value)
    word = str(number) if number is not None else str(value).strip().lower()
    if word not in _MODALITY_WORDS:
        raise DatasetFormatError(
            f"{where}: unknown modality {value!r}; expected 0 / visible or 1 / infrared"
        )
    return _MODALITY_WORDS[word]


def load(root: Path) -> Splits:
    manifest = find_manifest(root)
    columns, first = _read_table(manifest)
    base = manifest.parent
    unit = "line" if first == 2 else "row"
    index = DirIndex()
    parts: dict[str, list[Record]] = {split: [] for split in SPLITS}
    seen: dict[str, int] = {}
    modalities = columns.get("modality")
    for i, (raw_path, raw_pid, raw_camid, raw_split) in enumerate(
        zip(columns["path"], columns["pid"], columns["camid"], columns["split"], strict=True)
    ):
        number = first + i
        where = f"{manifest}, {unit} {number}"
        if not isinstance(raw_path, str) or not raw_path.strip():
            raise DatasetFormatError(f"{where}: empty path; expected an image path")
        relpath = raw_path.strip().replace("\\", "/")
        path = os.path.normpath(os.path.join(base, *relpath.split("/")))
        if os.path.isabs(relpath):
            path = os.path.normpath(relpath)
        if os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
            raise DatasetFormatError(
                f"{where}: {relpath!r} is not an image file; expected one of "
                f"{sorted(IMAGE_EXTENSIONS)}"
            )
        if not index.exists(path):
            raise DatasetFormatError(f"{where}: image {path} does not exist")
        if path in seen:
            raise DatasetFormatError(
                f"{where}: {path} is already listed on {unit} {seen[path]}; expected each image "
                "once"
            )
        seen[path] = number
        pid = _integer(raw_pid, column="pid", where=where)
        camid = _integer(raw_camid, column="camid", where=where)
        split = str(raw_split).strip()
        if split not in SPLITS:
            raise DatasetFormatError(
                f"{where}: unknown split {raw_split!r}; expected one of {list(SPLITS)}"
            )
        modality = Modality.VISIBLE if modalities is None else _modality(modalities[i], where)
        parts[split].append(Record(path, pid, camid, int(modality)))
    for split in SPLITS:
        if not parts[split]:
            raise DatasetFormatError(
                f"{manifest}: the {split} split is empty (no row has split {split!r}); expected "
                f"at least one image in each of {list(SPLITS)}"
            )
    train, query, gallery = (sorted(parts[s]) for s in SPLITS)
    counts = report_identity_overlap(train, query, gallery, source=manifest)
    all_records = [*train, *query, *gallery]
    return Splits(
        name="manifest",
        root=str(base),
        train=train,
        query=query,
        gallery=gallery,
        info={
            "manifest": str(manifest),
            "num_cameras": 1 + max(r.camid for r in all_records),  # camids are 0-based
            "modalities": sorted({r.modality for r in all_records}),
            **counts,
        },
    )
