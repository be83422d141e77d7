"""Report nodes: collect each architecture's ``metrics.json`` into one table and one chart."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

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


def _row(key: str, m: Any) -> dict[str, Any]:
    """One table row from the metrics of partition ``key`` (``<arch>/``)."""
    where = f"report: {key}metrics.json"
    if not isinstance(m, dict) or not isinstance(m.get("trained"), dict):
        raise ValueError(f"{where}: expected a JSON object with a 'trained' block (R1, mAP, mINP)")
    head, untrained = m["trained"], m.get("untrained") or {}
    missing = [k for k in ("R1", "mAP", "mINP") if not isinstance(head.get(k), int | float)]
    if missing:
        raise ValueError(f"{where}: 'trained' has no number for {missing}")
    model, training = m.get("model") or {}, m.get("training") or {}

    def number(block: dict[str, Any], name: str, scale: float = 1.0) -> float:
        value = block.get(name)
        return scale * float(value) if isinstance(value, int | float) else np.nan

    return {
        "architecture": key.split("/", maxsplit=1)[0],
        "dataset": m.get("dataset", "?"),
        "protocol": head.get("protocol", ""),
        "R1": 100 * head["R1"],
        "mAP": 100 * head["mAP"],
        "mINP": 100 * head["mINP"],
        "untrained_R1": number(untrained, "R1", 100.0),
        "untrained_mAP": number(untrained, "mAP", 100.0),
        "params_M": number(model, "params", 1e-6),
        "train_seconds": number(training, "seconds"),
        "images_per_s": number(training, "images_per_s"),
    }


def collect_metrics(partitions: dict[str, Callable[[], Any]], order: list[str]) -> pd.DataFrame:
    """One row per architecture from the ``<arch>/metrics.json`` partitions that exist: R1 /
    mAP / mINP of the trained and the untrained model (percent), parameters (millions),
    training time (s) and training throughput (images/s); rows in ``order``, then the others
    alphabetically."""
    rows = [_row(key, partitions[key]()) for key in sorted(partitions)]
    if not rows:
        raise ValueError(
            "report: no data/08_reporting/<architecture>/metrics.json found; run a training "
            "pipeline first (e.g. `kedro run --pipeline=train_dimn`)"
        )
    rank = {a: i for i, a in enumerate(order)}
    table = pd.DataFrame(rows)
    table["_order"] = table["architecture"].map(lambda a: rank.get(a, len(rank)))
    return (
        table.sort_values(["_order", "architecture"]).drop(columns="_order").reset_index(drop=True)
    )


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
    """Left: grouped bars of R1 / mAP / mINP (trained, solid) and untrained R1 / mAP (hatched).
    Right: accuracy against cost, mAP over training time, each point labelled with its
    parameter count and training throughput."""
    archs = table["architecture"].tolist()
    x = np.arange(len(archs))
    # a Figure of its own (no pyplot state, no backend switch): saved by the catalog's
    # MatplotlibDataset, shown inline in a notebook
    fig = Figure(figsize=(max(6, 1.6 * len(archs)) + 5, 4.5), layout="constrained")
    ax, cost = fig.subplots(1, 2, width_ratios=[max(6, 1.6 * len(archs)), 5])
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
    ax.set_ylim(0, 110)
    ax.legend(fontsize=8, ncol=5, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("R1 / mAP / mINP (trained vs untrained)")

    for row in table.to_dict("records"):
        seconds = row["train_seconds"]
        if np.isnan(seconds):
            continue
        cost.scatter(seconds / 60, row["mAP"], s=30 + 4 * np.nan_to_num(row["params_M"]))
        details = [
            f"{row['params_M']:.1f} M params" if not np.isnan(row["params_M"]) else None,
            f"{row['images_per_s']:.1f} img/s" if not np.isnan(row["images_per_s"]) else None,
        ]
        cost.annotate(
            "\n".join([row["architecture"], *[d for d in details if d]]),
            (seconds / 60, row["mAP"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=7,
        )
    cost.set_xlabel("training time (min)")
    cost.set_ylabel("mAP (%)")
    cost.set_ylim(bottom=0)
    cost.set_xlim(left=0)
    cost.grid(alpha=0.3)
    cost.set_title("accuracy vs training cost (size = parameters)")
    fig.suptitle("reid_pipeline: architectures side by side")
    return fig
