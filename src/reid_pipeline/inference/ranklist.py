"""The rank-list picture of a search: one row per query, the query then its top matches, each
match labelled with its rank and score. (``viz.ranklist.plot_rank_list`` marks true / false
matches from identities, which a search of unlabelled images does not have.)"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_TILE = (128, 64)  # height, width


def _tile(root: str | None, rel: str) -> np.ndarray | None:
    if root is None:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(Path(root) / rel) as img:
            return np.asarray(img.convert("RGB").resize((_TILE[1], _TILE[0])))
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def draw_rank_list(
    out: str | Path,
    rows: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    *,
    query_root: str | None,
    gallery_root: str | None,
    columns: int,
) -> Path:
    """Draw ``rows`` = [(query path, [(gallery path, score), ...]), ...] into ``out`` (PNG,
    written atomically). Images are read from ``query_root`` / ``gallery_root``; one that is not
    there is drawn as a grey tile with its name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    n = max(1, len(rows))
    cols = max(1, columns) + 1
    fig, axes = plt.subplots(n, cols, figsize=(1.2 * cols, 2.5 * n), squeeze=False)
    grey = np.full((*_TILE, 3), 200, dtype=np.uint8)
    for r, (query, matches) in enumerate(rows):
        tiles = [(query_root, query, "query")] + [
            (gallery_root, path, f"#{i} {score:.3f}") for i, (path, score) in enumerate(matches, 1)
        ]
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(tiles):
                continue
            root, rel, label = tiles[c]
            image = _tile(root, rel)
            ax.imshow(grey if image is None else image)
            name = Path(rel).name
            ax.set_title(f"{label}\n{name[:14]}", fontsize=6, color="blue" if c == 0 else "black")
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=80)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return out
