"""Embedding maps: a 2-D projection of query and gallery embeddings, coloured by identity."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def pca_2d(feats: np.ndarray) -> np.ndarray:
    """Project L2-normalised features on their first two principal components."""
    x = np.asarray(feats, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def plot_embedding_map(
    feats: np.ndarray,
    pids: np.ndarray,
    modality: np.ndarray,
    *,
    max_ids: int = 20,
    seed: int = 0,
    title: str = "embedding map (PCA)",
) -> Figure:
    """Scatter of ``max_ids`` random identities; marker = modality (o visible, ^ infrared)."""
    pids = np.asarray(pids)
    modality = np.asarray(modality)
    if len(feats) != len(pids) or len(pids) != len(modality):
        raise ValueError("feats, pids and modality must have the same length")
    ids = np.unique(pids)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(max_ids, len(ids)), replace=False)
    mask = np.isin(pids, chosen)
    xy = pca_2d(np.asarray(feats)[mask])
    colours = {pid: plt.cm.tab20(i % 20) for i, pid in enumerate(sorted(chosen))}
    fig, ax = plt.subplots(figsize=(6, 6), constrained_layout=True)
    for m, marker, name in ((0, "o", "visible"), (1, "^", "infrared")):
        sel = modality[mask] == m
        if sel.any():
            ax.scatter(
                xy[sel, 0],
                xy[sel, 1],
                c=[colours[p] for p in pids[mask][sel]],
                marker=marker,
                s=18,
                label=name,
                edgecolors="none",
            )
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig
