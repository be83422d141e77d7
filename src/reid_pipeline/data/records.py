"""The record type every loader returns and every later stage reads.

A record is ``(path, pid, camid, modality)``:

- ``path``: absolute path of the image file (``str``).
- ``pid``: person id. Training pids are relabelled ``0..N-1`` (for the classifier); query and
  gallery keep the dataset's own ids (Market's distractor id 0 included).
- ``camid``: camera index, **0-based** (Market ``c1`` -> 0).
- ``modality``: ``0`` visible, ``1`` infrared (thermal / near-infrared).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

import pandas as pd

from reid_pipeline.errors import DataError


class Modality(IntEnum):
    VISIBLE = 0
    INFRARED = 1


class Record(NamedTuple):
    path: str
    pid: int
    camid: int
    modality: int = Modality.VISIBLE


MANIFEST_COLUMNS = ("path", "pid", "camid", "modality")


class DatasetFormatError(DataError):
    """A dataset folder does not match its documented layout (docs/datasets.md), or an image is
    damaged.

    The message always names the offending path (or key) and what was expected there. A
    :class:`reid_pipeline.errors.DataError` (and so a ``ValueError``): the command line prints it
    as one line.
    """


@dataclass
class Splits:
    """Train / query / gallery records of one dataset, plus format-specific information.

    ``info`` holds what a protocol needs beyond the records (e.g. SYSU-MM01's test ids, RegDB's
    trial, CUHK03's variant) and is plain JSON-able data.
    """

    name: str
    root: str
    train: list[Record]
    query: list[Record]
    gallery: list[Record]
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, which: str) -> list[Record]:
        if which not in ("train", "query", "gallery"):
            raise KeyError(f"split must be 'train', 'query' or 'gallery', got {which!r}")
        return getattr(self, which)


def relabel(records: Sequence[Record]) -> list[Record]:
    """Map the pids of ``records`` to ``0..N-1`` in ascending order of the original pid."""
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [r._replace(pid=mapping[r.pid]) for r in records]


def records_to_frame(records: Iterable[Record]) -> pd.DataFrame:
    """Records -> a manifest DataFrame with columns ``path, pid, camid, modality``."""
    rows = list(records)
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return frame.astype({"path": str, "pid": "int64", "camid": "int64", "modality": "int64"})


def frame_to_records(frame: pd.DataFrame) -> list[Record]:
    """A manifest DataFrame -> records; raises a clear error when a column is missing."""
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetFormatError(
            f"manifest is missing column(s) {missing}; expected columns {list(MANIFEST_COLUMNS)}"
        )
    return [
        Record(str(p), int(i), int(c), int(m))
        for p, i, c, m in zip(
            frame["path"], frame["pid"], frame["camid"], frame["modality"], strict=True
        )
    ]
