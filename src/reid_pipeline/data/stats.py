"""Dataset statistics as the field prints them (ids / images / cameras per split and modality)."""

from __future__ import annotations

import pandas as pd

from reid_pipeline.data.records import Modality, Splits

_MODALITY_NAMES = {Modality.VISIBLE: "visible", Modality.INFRARED: "infrared"}


def split_statistics(splits: Splits) -> pd.DataFrame:
    """One row per split (and per modality when the dataset has both)."""
    rows = []
    cross = any(r.modality for part in (splits.train, splits.query, splits.gallery) for r in part)
    for name in ("train", "query", "gallery"):
        records = splits.split(name)
        groups = (
            [(m, [r for r in records if r.modality == m]) for m in (0, 1)]
            if cross
            else [(None, records)]
        )
        for modality, rs in groups:
            if cross and not rs:
                continue
            rows.append(
                {
                    "split": name,
                    "modality": _MODALITY_NAMES[Modality(modality)] if cross else "visible",
                    "ids": len({r.pid for r in rs}),
                    "images": len(rs),
                    "cameras": len({r.camid for r in rs}),
                }
            )
    return pd.DataFrame(rows, columns=["split", "modality", "ids", "images", "cameras"])


def format_statistics(name: str, table: pd.DataFrame) -> str:
    """The table as the usual fixed-width block printed when a dataset is loaded."""
    lines = [
        f"=> {name} loaded",
        "  " + "-" * 52,
        f"  {'subset':<9}| {'modality':<9}| {'# ids':>6} | {'# images':>9} | {'# cameras':>9}",
        "  " + "-" * 52,
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"  {row.split:<9}| {row.modality:<9}| {row.ids:>6} | {row.images:>9} | "
            f"{row.cameras:>9}"
        )
    lines.append("  " + "-" * 52)
    return "\n".join(lines)
