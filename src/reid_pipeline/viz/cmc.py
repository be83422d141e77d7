"""CMC curves: several rankings on one figure, each labelled with its rank-1 accuracy and mAP.

Built on ``matplotlib.figure.Figure`` directly (no pyplot state, so it is safe in Kedro runners
and threads); ``path`` writes a PNG through the Agg canvas.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reid_pipeline.evaluation.protocols import SettingResult
from reid_pipeline.evaluation.rank import RankResult

CurveLike = RankResult | SettingResult | Mapping[str, Any] | Sequence[float] | np.ndarray


def _curve(name: str, value: CurveLike) -> tuple[np.ndarray, float | None]:
    """(cmc, mAP or None) of one entry."""
    if isinstance(value, RankResult):
        return np.asarray(value.cmc, dtype=float), value.mAP
    if isinstance(value, SettingResult):
        return np.asarray(value.cmc, dtype=float), value.mean.get("mAP")
    if isinstance(
        value, Mapping
    ):  # RankResult.to_dict() / SettingResult.to_dict() / {"cmc", "mAP"}
        if "cmc" not in value:
            raise ValueError(
                f"curve {name!r}: a mapping needs a 'cmc' entry, got keys {list(value)}"
            )
        m_ap = value.get("mAP", value.get("mean", {}).get("mAP"))
        return np.asarray(value["cmc"], dtype=float), None if m_ap is None else float(m_ap)
    return np.asarray(value, dtype=float), None


def plot_cmc(
    curves: Mapping[str, CurveLike],
    *,
    path: str | os.PathLike[str] | None = None,
    max_rank: int | None = None,
    title: str = "CMC",
    figsize: tuple[float, float] = (6.0, 4.0),
    dpi: int = 100,
) -> Figure:
    """Plot ``{label: ranking}`` CMC curves (rank k on x, accuracy in % on y).

    A ranking is a ``RankResult``, a protocol ``SettingResult`` (its mean CMC and mAP), a mapping
    with ``cmc`` (and ``mAP`` or ``mean.mAP``) such as their ``to_dict()``, or a bare CMC array.
    ``max_rank`` truncates the x axis (default: the longest curve); ``path`` saves a PNG of
    ``figsize * dpi`` pixels.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty mapping {label: ranking}")
    if max_rank is not None and (
        isinstance(max_rank, bool) or not isinstance(max_rank, int) or max_rank < 1
    ):
        raise ValueError(f"max_rank must be an integer >= 1 or None, got {max_rank!r}")
    parsed = {}
    for name, value in curves.items():
        cmc, m_ap = _curve(str(name), value)
        if cmc.ndim != 1 or len(cmc) == 0 or not np.all(np.isfinite(cmc)):
            raise ValueError(f"curve {name!r}: the CMC must be a non-empty 1-D finite array")
        if np.any(cmc < 0) or np.any(cmc > 1) or np.any(np.diff(cmc) < 0):
            raise ValueError(f"curve {name!r}: a CMC is non-decreasing within [0, 1]")
        parsed[str(name)] = (cmc, m_ap)
    top = max_rank or max(len(c) for c, _ in parsed.values())
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, (cmc, m_ap) in parsed.items():
        shown = cmc[:top]
        label = f"{name} (R1 {100 * cmc[0]:.1f}%"
        label += ")" if m_ap is None else f", mAP {100 * m_ap:.1f}%)"
        ax.plot(
            np.arange(1, len(shown) + 1),
            100 * shown,
            marker="." if top <= 30 else None,
            label=label,
        )
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_xlim(1, top)
    ax.set_ylim(0, 100.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", dpi=dpi)
    return fig
