"""Rank lists: a few queries with their top-k gallery images, true matches marked."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from reid_pipeline.data.records import Record

_MODALITY = {0: "VIS", 1: "IR"}


def _load(path: str, size: tuple[int, int]) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((size[1], size[0])))


def plot_rank_list(
    distmat: np.ndarray,
    query: Sequence[Record],
    gallery: Sequence[Record],
    *,
    query_indices: Sequence[int],
    topk: int = 10,
    image_size: tuple[int, int] = (128, 64),
    exclude_same_camera: bool = True,
    title: str = "",
) -> Figure:
    """One row per query: the query image, then its ``topk`` nearest gallery images.

    Green frame = same identity, red = different; gallery images of the query's own identity and
    camera are skipped as the metric skips them (``exclude_same_camera``). Each tile is labelled
    with its pid, camera and modality.
    """
    distmat = np.asarray(distmat)
    if distmat.shape != (len(query), len(gallery)):
        raise ValueError(
            f"distmat shape {distmat.shape} does not match {len(query)} queries x "
            f"{len(gallery)} gallery records"
        )
    if not query_indices:
        raise ValueError("query_indices is empty: choose at least one query to show")
    rows = len(query_indices)
    fig, axes = plt.subplots(rows, topk + 1, figsize=(1.1 * (topk + 1), 2.3 * rows), squeeze=False)
    for row, qi in enumerate(query_indices):
        q = query[qi]
        order = np.argsort(distmat[qi], kind="stable")
        if exclude_same_camera:
            order = [
                g for g in order if not (gallery[g].pid == q.pid and gallery[g].camid == q.camid)
            ]
        shown = list(order[:topk])
        tiles = [(q, None)] + [(gallery[g], gallery[g].pid == q.pid) for g in shown]
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(tiles):
                ax.axis("off")
                continue
            rec, match = tiles[col]
            ax.imshow(_load(rec.path, image_size))
            colour = "black" if match is None else ("limegreen" if match else "red")
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3 if match is not None else 1)
            head = "query" if match is None else f"#{col}"
            ax.set_title(
                f"{head}\nid {rec.pid} c{rec.camid + 1} {_MODALITY.get(rec.modality, '?')}",
                fontsize=7,
            )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
