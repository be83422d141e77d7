"""The training curve: one row per epoch, kept as plain ``{column: [values]}`` lists.

Plain lists (not a DataFrame) go into checkpoints so they load with ``weights_only=True``;
``to_frame`` / ``to_csv`` give the table. Columns appear as the run produces them; an epoch
without a value (e.g. no validation that epoch) holds NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

History = dict[str, list[float]]


def append_row(history: History, row: Mapping[str, float]) -> None:
    """Add one epoch's values, padding absent columns with NaN (in place)."""
    n = len(next(iter(history.values()))) if history else 0
    for key in row:
        if key not in history:
            history[key] = [math.nan] * n
    for key, values in history.items():
        values.append(float(row[key]) if key in row else math.nan)


def to_frame(history: Mapping[str, list[float]]) -> pd.DataFrame:
    frame = pd.DataFrame({k: list(v) for k, v in history.items()})
    if "epoch" in frame:
        frame["epoch"] = frame["epoch"].astype("int64")
    return frame


def to_csv(history: Mapping[str, list[float]]) -> str:
    return to_frame(history).to_csv(index=False)
