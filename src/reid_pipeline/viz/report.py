"""The report chart: every trained architecture side by side (accuracy, and accuracy against
training cost)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


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
