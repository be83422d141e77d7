"""The options a synthetic dataset folder was generated with, and ``ensure_synthetic``.

Every folder ``generate_synthetic`` writes holds ``synthetic.json`` (written before the folder is
renamed into place): the generator's format number, the layout, the options as requested and as
resolved (preset values filled in). ``ensure_synthetic`` compares the resolved options, so
``{preset: tiny}`` and ``{preset: tiny, seed: 0}`` are the same dataset, while a changed preset
or option regenerates it. ``progress``, ``workers`` and ``overwrite`` change how the files are
written, not what they contain, and are left out (docs/datasets.md, "Synthetic data").
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reid_pipeline.data.synthetic.options import SyntheticOptions

logger = logging.getLogger(__name__)

STAMP_NAME = "synthetic.json"
# Bumped when the generator draws different pictures or files for the same options, so that
# folders made by an older generator are regenerated.
GENERATOR_FORMAT = 1
# Options that change how a dataset is written, never what it contains.
NOT_CONTENT = frozenset({"progress", "workers", "overwrite"})


def _plain(value: Any) -> Any:
    """JSON round trip: tuples -> lists, so a stamp read back compares equal."""
    return json.loads(json.dumps(value))


def make_stamp(options: SyntheticOptions, requested: Mapping[str, Any]) -> dict[str, Any]:
    resolved = {k: v for k, v in dataclasses.asdict(options).items() if k not in NOT_CONTENT}
    return _plain(
        {
            "generator_format": GENERATOR_FORMAT,
            "layout": options.layout,
            "requested": {k: v for k, v in requested.items() if k not in NOT_CONTENT},
            "resolved": resolved,
        }
    )


def write_stamp(folder: Path, stamp: Mapping[str, Any]) -> None:
    (folder / STAMP_NAME).write_text(
        json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def read_stamp(folder: Path) -> dict[str, Any] | None:
    """The stamp of ``folder``; None when it is missing or unreadable (the folder is then
    treated as made with unknown options)."""
    try:
        stamp = json.loads((folder / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _content(stamp: Mapping[str, Any] | None) -> Any:
    if stamp is None:
        return None
    return (stamp.get("generator_format"), stamp.get("layout"), stamp.get("resolved"))


def _differences(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    if old is None:
        return "no record of the options it was made with"
    if old.get("generator_format") != new["generator_format"]:
        return (
            f"made by generator format {old.get('generator_format')}, now {new['generator_format']}"
        )
    before, after = old.get("resolved") or {}, new["resolved"]
    changed = [
        f"{key} {before.get(key)!r} -> {after.get(key)!r}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
    return "; ".join(changed) or "layout changed"
