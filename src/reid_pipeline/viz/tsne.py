"""t-SNE of the test embeddings: colour = identity, marker = modality (as WRIM-Net's Fig. 5).

scikit-learn's t-SNE (van der Maaten & Hinton, JMLR 2008; exact gradients, 500 iterations, PCA
initialisation) on the L2-normalised embeddings (the evaluation's cosine geometry) of at most
``max_ids`` identities and ``max_points`` images (a random subsample, seeded), so the figure
costs a few seconds on two CPU cores (exact t-SNE of 300 points: about 3 s, faster than
Barnes-Hut at this size). t-SNE keeps neighbourhoods, not distances: clusters and their mixing
by modality are meaningful, the distances between clusters are not (docs/figures.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

MARKERS = {0: ("o", "visible"), 1: ("^", "infrared")}


def identity_colour(i: int, n: int) -> tuple[float, ...]:
    """Colour of the ``i``-th of ``n`` identities: tab10 up to 10, else tab20 with its dark
    shades first, so neighbouring identities never get two shades of one hue."""
    if n <= 10:
        return plt.cm.tab10(i % 10)
    return plt.cm.tab20((2 * i) % 20 + (i // 10) % 2)


def subsample(pids: np.ndarray, *, max_ids: int, max_points: int, seed: int) -> np.ndarray:
    """Indices of the images of ``max_ids`` random identities, at most ``max_points`` of them
    (a random share of each identity's images), sorted."""
    rng = np.random.default_rng(seed)
    ids = np.unique(pids)
    chosen = rng.choice(ids, size=min(max_ids, len(ids)), replace=False)
    idx = np.flatnonzero(np.isin(pids, chosen))
    if len(idx) > max_points:
        idx = rng.choice(idx, size=max_points, replace=False)
    return np.sort(idx)


def tsne_2d(feats: np.ndarray, *, seed: int) -> np.ndarray:
    """2-D t-SNE of the L2-normalised ``feats`` (exact, 500 iterations, PCA initialisation,
    perplexity 30 or ``(n - 1) / 3`` for few points)."""
    from sklearn.manifold import TSNE  # imported here: the import costs about a second

    x = np.asarray(feats, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if len(x) < 3:
        raise ValueError(f"t-SNE needs at least 3 embeddings, got {len(x)}")
    perplexity = float(min(30.0, (len(x) - 1) / 3))
    tsne = TSNE(
        2,
        perplexity=perplexity,
        init="pca",
        method="exact",
        max_iter=500,
        random_state=seed,
        n_jobs=1,
    )
    return tsne.fit_transform(x)


def plot_tsne(
    feats: np.ndarray,
    pids: np.ndarray,
    modality: np.ndarray,
    *,
    max_ids: int = 20,
    max_points: int = 300,
    seed: int = 0,
    title: str = "t-SNE of the test embeddings",
) -> Figure:
    """Scatter of the t-SNE map; colour = identity (one of 20 colours), marker = modality."""
    pids, modality = np.asarray(pids), np.asarray(modality)
    if not len(feats) == len(pids) == len(modality):
        raise ValueError("feats, pids and modality must have the same length")
    idx = subsample(pids, max_ids=max_ids, max_points=max_points, seed=seed)
    xy = tsne_2d(np.asarray(feats)[idx], seed=seed)
    pids, modality = pids[idx], modality[idx]
    ids = sorted(np.unique(pids).tolist())
    colour = {pid: identity_colour(i, len(ids)) for i, pid in enumerate(ids)}
    fig, ax = plt.subplots(figsize=(6.4, 6.4), constrained_layout=True)
    handles = []
    for m, (marker, name) in MARKERS.items():
        sel = modality == m
        if sel.any():
            ax.scatter(
                xy[sel, 0],
                xy[sel, 1],
                c=[colour[p] for p in pids[sel]],
                marker=marker,
                s=30,
                edgecolors="black",
                linewidths=0.3,
                alpha=0.9,
            )
            handles.append(Line2D([], [], marker=marker, ls="", color="grey", label=name))
    ax.legend(handles=handles, title="modality", fontsize=8, loc="best")
    ax.set_title(f"{title}\n{len(ids)} identities (colours), {len(idx)} images", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def tsne_figure(
    embeddings: Mapping[str, torch.Tensor],
    *,
    seed: int,
    title: str,
    benchmark: bool = True,
    max_ids: int = 20,
    max_points: int = 300,
) -> Figure:
    """t-SNE of query + gallery embeddings; on the benchmarks (``benchmark``) distractors and
    junk (pid <= 0) are left out, on your own data pid 0 is a person like any other."""
    feats = torch.cat([embeddings["query_feats"], embeddings["gallery_feats"]]).float().numpy()
    pids = torch.cat([embeddings["query_pids"], embeddings["gallery_pids"]]).numpy()
    modality = torch.cat([embeddings["query_modality"], embeddings["gallery_modality"]]).numpy()
    keep = pids > 0 if benchmark else np.ones(len(pids), dtype=bool)
    return plot_tsne(
        feats[keep],
        pids[keep],
        modality[keep],
        max_ids=max_ids,
        max_points=max_points,
        seed=seed,
        title=title,
    )
