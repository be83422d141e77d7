"""Where the tests find the data files the project shares with them (``../shared/data``).

The official SYSU-MM01 split files (``rand_perm_cam.mat``, ``train_id.mat``, ``test_id.mat``) live
beside the checkout, not in it. A clone may sit anywhere, so the tests look in order at
``$REID_SHARED_DATA``, ``<repo>/../shared/data``, ``<repo>/shared/data`` and ``/work/shared/data``
and use the first folder that holds all three files; a test that needs them is skipped with a
reason that lists where it looked.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_SYSU_FILES = ("rand_perm_cam.mat", "train_id.mat", "test_id.mat")

CANDIDATES = [Path(os.environ["REID_SHARED_DATA"])] if os.environ.get("REID_SHARED_DATA") else []
CANDIDATES += [_REPO.parent / "shared" / "data", _REPO / "shared" / "data"]
CANDIDATES.append(Path("/work/shared/data"))

_sysu_dirs = [base / "sysu_mm01_official" for base in CANDIDATES]
SYSU_OFFICIAL = next(
    (d for d in _sysu_dirs if all((d / f).is_file() for f in _SYSU_FILES)), _sysu_dirs[0]
)
SYSU_OFFICIAL_PRESENT = all((SYSU_OFFICIAL / f).is_file() for f in _SYSU_FILES)
SYSU_OFFICIAL_MISSING = f"{', '.join(_SYSU_FILES)} not found together in any of: " + ", ".join(
    str(d) for d in _sysu_dirs
)
