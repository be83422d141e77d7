"""Where the tests find the data files the project shares with them (``../shared/data``).

The official SYSU-MM01 split files (``rand_perm_cam.mat``, ``train_id.mat``, ``test_id.mat``) live
beside the checkout, not in it. A clone may sit anywhere, so the tests look in order at
``$REID_SHARED_DATA``, ``<repo>/../shared/data``, ``<repo>/shared/data`` and ``/work/shared/data``,
and a test that needs them is skipped with a reason that lists where it looked.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def candidates() -> list[Path]:
    paths = []
    if os.environ.get("REID_SHARED_DATA"):
        paths.append(Path(os.environ["REID_SHARED_DATA"]))
    paths += [_REPO.parent / "shared" / "data", _REPO / "shared" / "data"]
    paths.append(Path("/work/shared/data"))
    return paths


def find(name: str) -> Path:
    """The first candidate folder holding ``name``; the first candidate's path if none does."""
    for base in candidates():
        if (base / name).exists():
            return base / name
    return candidates()[0] / name


def missing_reason(name: str) -> str:
    return f"{name} not found in any of: " + ", ".join(str(p) for p in candidates())


SYSU_OFFICIAL = find("sysu_mm01_official")
SYSU_OFFICIAL_PRESENT = all(
    (SYSU_OFFICIAL / f).is_file() for f in ("rand_perm_cam.mat", "train_id.mat", "test_id.mat")
)
SYSU_OFFICIAL_MISSING = missing_reason(
    "sysu_mm01_official (rand_perm_cam.mat, train_id.mat, test_id.mat)"
)
