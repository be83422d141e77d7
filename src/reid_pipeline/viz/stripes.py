"""A part-based model's horizontal stripes drawn over a person, one panel per granularity (as
DIMN's figure of its 2..6 equal segments).

Which models have stripes: those whose builder takes a ``granularities`` option (the stripe
counts; :func:`declares_stripes`, read from the registry without building the model), so the
train pipeline adds the figure only for them. The rows of each stripe come from the model
itself where it says so (a ``stripe_rows(height) -> {n: [(start, end), ...]}`` method), else from
the split the project's part pooling uses (:func:`reid_pipeline.models.layers.parts.row_ranges`
for each ``n`` in ``model.granularities``, with the model's ``stripes`` split rule where it has
one). The stripes are cut on the trunk's last feature map (``model.backbone.layer4``); its
height is measured with a trunk forward of a blank image on the meta device, and a feature
row ``r`` of ``H`` covers image rows ``[r * h / H, (r + 1) * h / H)``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from reid_pipeline.data.records import Record
from reid_pipeline.models.layers.parts import row_ranges
from reid_pipeline.models.registry import model_options
from reid_pipeline.viz.gradcam import label, load_images, pick_queries

Stripes = dict[int, list[tuple[int, int]]]


def declares_stripes(name: str) -> bool:
    """Whether the registered model ``name`` has horizontal stripes (a ``granularities``
    option)."""
    return "granularities" in model_options(name)


def feature_height(model: nn.Module, image_size: tuple[int, int]) -> int:
    """Rows of the trunk's last feature map (``backbone.layer4``) for images of
    ``image_size``: a forward through a copy of the trunk on the ``meta`` device (shapes
    only, no arithmetic; the height does not depend on the content)."""
    trunk = copy.deepcopy(model.get_submodule("backbone")).to("meta")
    blank = torch.zeros(1, 3, *image_size, device="meta")
    with torch.no_grad():
        x = trunk.forward_stem(blank, torch.zeros(1, dtype=torch.long, device="meta"))
        for layer in (trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4):
            x = layer(x)
    return int(x.shape[2])


def model_stripes(model: nn.Module, height: int) -> Stripes:
    """``{n: [(start, end) feature rows of each stripe]}`` (see the module docstring)."""
    own = getattr(model, "stripe_rows", None)
    if callable(own):
        return {int(n): [tuple(r) for r in rows] for n, rows in own(height).items()}
    grans = getattr(model, "granularities", None)
    if not grans:
        raise ValueError(f"{type(model).__name__} has no horizontal stripes (no granularities)")
    split = getattr(model, "stripes", None)  # DIMN's split rule ("partition" / "adaptive")
    if isinstance(split, str):
        return {int(n): row_ranges(height, int(n), split) for n in grans}
    return {int(n): row_ranges(height, int(n)) for n in grans}


def plot_stripes(
    rgb: Sequence[np.ndarray], stripes: Stripes, height: int, labels: Sequence[str], *, title: str
) -> Figure:
    """Rows = persons, columns = granularities; each stripe a translucent band with its
    feature rows written on it. Rows shared by two stripes show both colours."""
    grans = sorted(stripes)
    fig, axes = plt.subplots(
        len(rgb), len(grans), figsize=(1.75 * len(grans) + 0.3, 3.4 * len(rgb)), squeeze=False
    )
    colours = plt.cm.tab10.colors
    for row, img in enumerate(rgb):
        scale = img.shape[0] / height
        for col, n in enumerate(grans):
            ax = axes[row, col]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            for i, (start, end) in enumerate(stripes[n]):
                y0, y1 = start * scale - 0.5, end * scale - 0.5
                ax.axhspan(y0, y1, color=colours[i % 10], alpha=0.35, lw=0)
                ax.axhline(y0, color="white", lw=0.8)
                ax.text(
                    2,
                    (y0 + y1) / 2,
                    f"{start}-{end - 1}",
                    color="white",
                    fontsize=7,
                    va="center",
                    fontweight="bold",
                )
            if row == 0:
                ax.set_title(f"{n} stripes", fontsize=9)
            if col == 0:
                ax.set_ylabel(labels[row], fontsize=8)
    fig.suptitle(f"{title}\nfeature rows of each stripe (of {height})", fontsize=10)
    fig.tight_layout()
    return fig


def stripes_figure(
    model: nn.Module,
    query: Sequence[Record],
    *,
    image_size: tuple[int, int],
    count: int = 2,
    benchmark: bool = True,
    title: str = "",
) -> Figure:
    """The stripes of ``model`` over ``count`` query persons of distinct identities."""
    records = [query[i] for i in pick_queries(query, count, benchmark=benchmark)]
    _, rgb = load_images(records, image_size)
    height = feature_height(model, image_size)
    labels = [label(r.pid, r.camid, r.modality) for r in records]
    return plot_stripes(rgb, model_stripes(model, height), height, labels, title=title)
