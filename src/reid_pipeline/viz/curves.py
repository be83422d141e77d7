"""Training curves: every loss term, the learning rate and validation metrics per epoch."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

_LOSS_EXCLUDE = ("epoch", "images_per_s", "seconds", "time")


def plot_training_curves(history: pd.DataFrame, *, title: str = "training") -> Figure:
    """Loss terms (left), learning rates (middle) and validation metrics (right) per epoch.

    Columns: ``epoch``; ``loss`` / ``loss_<term>``; ``lr`` / ``lr_<group>``; ``val_<metric>``.
    """
    if history.empty or "epoch" not in history.columns:
        raise ValueError("training history is empty or has no 'epoch' column")
    epochs = history["epoch"].to_numpy()
    loss_cols = [c for c in history.columns if c.startswith("loss")]
    lr_cols = [c for c in history.columns if c.startswith("lr")]
    val_cols = [c for c in history.columns if c.startswith("val_") and history[c].notna().any()]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for col in loss_cols:
        axes[0].plot(epochs, history[col], marker=".", label=col.removeprefix("loss_"))
    axes[0].set_title("loss terms")
    axes[0].set_yscale("log" if (history[loss_cols] > 0).all().all() else "linear")
    for col in lr_cols:
        axes[1].plot(epochs, history[col], marker=".", label=col)
    axes[1].set_title("learning rate")
    for col in val_cols:
        mask = history[col].notna()
        axes[2].plot(
            epochs[mask], history.loc[mask, col], marker="o", label=col.removeprefix("val_")
        )
    axes[2].set_title("validation (held-out training ids)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig
