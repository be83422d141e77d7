"""Report nodes: collect each architecture's ``metrics.json`` into one table and one chart."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

_COLUMNS = [
    ("architecture", "architecture"),
    ("dataset", "dataset"),
    ("protocol", "protocol"),
    ("R1", "R1 (%)"),
    ("mAP", "mAP (%)"),
    ("mINP", "mINP (%)"),
    ("untrained_R1", "untrained R1 (%)"),
    ("untrained_mAP", "untrained mAP (%)"),
    ("params_M", "params (M)"),
    ("train_seconds", "training time (s)"),
    ("images_per_s", "train images/s"),
]


def collect_metrics(partitions: dict[str, Callable[[], Any]], order: list[str]) -> pd.DataFrame:
    """One row per architecture from the ``<arch>/metrics.json`` partitions that exist."""
    rows = []
    for key in sorted(partitions):
        arch = key.split("/")[0]
        m = partitions[key]()
        head, untrained = m["trained"], m.get("untrained", {})
        rows.append(
            {
                "architecture": arch,
                "dataset": m.get("dataset", "?"),
                "protocol": head.get("protocol", ""),
                "R1": 100 * head["R1"],
                "mAP": 100 * head["mAP"],
                "mINP": 100 * head["mINP"],
                "untrained_R1": 100 * untrained["R1"] if "R1" in untrained else np.nan,
                "untrained_mAP": 100 * untrained["mAP"] if "mAP" in untrained else np.nan,
                "params_M": m.get("model", {}).get("params", np.nan) / 1e6,
                "train_seconds": m.get("training", {}).get("seconds", np.nan),
                "images_per_s": m.get("training", {}).get("images_per_s", np.nan),
            }
        )
    if not rows:
        raise ValueError(
            "report: no data/08_reporting/<architecture>/metrics.json found; run a training "
            "pipeline first (e.g. `kedro run --pipeline=train_dimn`)"
        )
    rank = {a: i for i, a in enumerate(order)}
    table = pd.DataFrame(rows)
    table["_order"] = table["architecture"].map(lambda a: rank.get(a, len(rank)))
    return table.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def render_table(table: pd.DataFrame) -> str:
    """The table as Markdown (numbers with one decimal)."""
    header = "| " + " | ".join(title for _, title in _COLUMNS) + " |"
    sep = (
        "|"
        + "|".join(
            "---" if k in ("architecture", "dataset", "protocol") else "---:" for k, _ in _COLUMNS
        )
        + "|"
    )
    lines = ["# Results side by side", "", header, sep]
    for row in table.to_dict("records"):
        cells = []
        for key, _ in _COLUMNS:
            v = row[key]
            cells.append(
                f"{v:.1f}"
                if isinstance(v, float) and not np.isnan(v)
                else ("-" if isinstance(v, float) else str(v))
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Untrained = the same architecture with its initial weights, evaluated on the same split.",
    ]
    text = "\n".join(lines) + "\n"
    logger.info("\n%s", text)
    return text


def render_chart(table: pd.DataFrame) -> Figure:
    """Grouped bars of R1 / mAP / mINP (trained, solid) and untrained R1 / mAP (hatched)."""
    archs = table["architecture"].tolist()
    x = np.arange(len(archs))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(archs)), 4), constrained_layout=True)
    series = [
        ("R1", "R1"),
        ("mAP", "mAP"),
        ("mINP", "mINP"),
        ("untrained_R1", "untrained R1"),
        ("untrained_mAP", "untrained mAP"),
    ]
    width = 0.8 / len(series)
    for i, (col, label) in enumerate(series):
        ax.bar(
            x + (i - len(series) / 2 + 0.5) * width,
            table[col].fillna(0),
            width,
            label=label,
            hatch="//" if col.startswith("untrained") else None,
            alpha=0.55 if col.startswith("untrained") else 1.0,
        )
    ax.set_xticks(x, [f"{a}\n({d})" for a, d in zip(archs, table["dataset"], strict=True)])
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=5, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("reid_pipeline: architectures side by side")
    return fig
