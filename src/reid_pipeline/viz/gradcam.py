"""Grad-CAM heat maps of a trained re-identification model over a few test images (the papers'
"activation maps": WRIM-Net Fig. 4, DIMN's regions of focus after erasing).

The gradient is taken by the project's own Grad-CAM (:func:`reid_pipeline.models.layers.gradcam.
grad_cam`: ``torch.autograd.grad`` of a scalar score with respect to a feature map, channel
weights = the gradient's spatial mean, map = ReLU of the weighted channel sum).

Target layers, chosen the same way for every model (docs/figures.md):

- ``trunk``: the output of the trunk's last stage, ``model.backbone.layer4`` (its last residual
  block; every model of the project has a ResNet trunk named ``backbone``; a model's own blocks
  after it, e.g. WRIM-Net's MIIM or FIENet's PFAM/MPIM, are not in this map);
- ``erased``: where the model has a second copy of the last stage fed with an erased input
  (``model.erased_layer4``, DIMN's suppression branch), its output too: the regions the model
  looks at once the most salient region is erased. The erased window is read from that stage's
  input (the cells whose every channel is exactly zero).

The score: a test image has no classifier logit (test identities are not training classes), so
the score of image ``b`` is the projection of its embedding ``e_b`` (the model's eval-mode
output) on the L2-normalised *reference* ``r_b`` of its identity, ``<e_b, r_b / |r_b|>``; the
reference is the mean L2-normalised gallery embedding of that identity (the other modality's on
visible-infrared data) minus the mean of the whole gallery's, the direction that sets the
identity apart from the average person, as a classifier's logit does for a training class.
The map shows the evidence the model uses to tell this person from the others. (Without the
centring, a BNNeck embedding's constant offset dominates the reference and the maps of a weakly
trained model come out all negative, i.e. empty after the ReLU.) The model stays in eval mode
(BatchNorm running statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor, nn

from reid_pipeline.data.records import Record
from reid_pipeline.data.torch_dataset import read_image
from reid_pipeline.data.transforms import eval_transform
from reid_pipeline.models.layers.gradcam import grad_cam

#: the trunk's last stage and DIMN-style erased copies of it, by figure row name
TARGETS = {"trunk": "backbone.layer4", "erased": "erased_layer4"}
_TITLES = {"trunk": "Grad-CAM, trunk's last stage", "erased": "after erasing (erased branch)"}
_MODALITY = {0: "VIS", 1: "IR"}


@dataclass
class ActivationMaps:
    """Per target layer (``"trunk"``, ``"erased"``) the ``(B, H, W)`` Grad-CAM, normalised to
    [0, 1] per image, and, for ``"erased"``, the ``(B, h, w)`` bool map of the erased cells."""

    cams: dict[str, Tensor]
    erased: Tensor | None


def target_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's target layers by name (see the module docstring): the last residual block of
    each stage (its output is the stage's output, also where a model runs the stage block by
    block, as AGW's and FIENet's non-local stages do); a model without a ResNet trunk (a new
    architecture) gets its last convolution's output."""
    modules = dict(model.named_modules())
    if not isinstance(modules.get(TARGETS["trunk"]), nn.Sequential):
        # not a ResNet trunk (a new architecture): the last convolution's output
        convs = [m for m in modules.values() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(
                f"{type(model).__name__} has no convolution; the activation maps need a "
                "feature map (docs/figures.md)"
            )
        return {"trunk": convs[-1]}
    return {
        name: modules[path][-1]
        for name, path in TARGETS.items()
        if isinstance(modules.get(path), nn.Sequential)
    }


def activation_maps(
    model: nn.Module, images: Tensor, modality: Tensor | None, references: Tensor
) -> ActivationMaps:
    """Grad-CAM of ``images`` ``(B, 3, H, W)`` for the score ``sum_b <e_b, r_b/|r_b|>``
    (``references`` ``(B, feat_dim)``) at each target layer, upsampled to the image size."""
    layers = target_layers(model)
    feats: dict[str, Tensor] = {}
    erased_input: list[Tensor] = []

    def keep(name: str):
        def hook(_m: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> Tensor:
            feats[name] = out
            return out.clone()  # an in-place op after the layer (ReLU) must not change `out`

        return hook

    handles = [layer.register_forward_hook(keep(name)) for name, layer in layers.items()]
    if "erased" in layers:
        first = model.get_submodule(TARGETS["erased"])[0]  # the erased map enters here
        handles.append(
            first.register_forward_pre_hook(lambda _m, inp: erased_input.append(inp[0].detach()))
        )
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            emb = model(images, modality=modality)  # (B, feat_dim)
            if set(feats) != set(layers):
                raise ValueError(
                    f"{type(model).__name__}'s eval forward did not run "
                    f"{sorted(TARGETS[n] for n in set(layers) - set(feats))}"
                )
            ref = F.normalize(references.to(emb), dim=1)
            score = (emb * ref).sum()
            cams = {name: grad_cam(score, f) for name, f in feats.items()}  # (B, h, w)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    size = images.shape[-2:]
    out = {}
    for name, cam in cams.items():
        up = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        peak = up.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
        out[name] = (up / peak).cpu()  # (B, H, W) in [0, 1]
    erased = (erased_input[0].abs().sum(dim=1) == 0).cpu() if erased_input else None
    return ActivationMaps(cams=out, erased=erased)


def identity_references(
    query_pids: Sequence[int], gallery_feats: Tensor, gallery_pids: Tensor, fallback: Tensor
) -> Tensor:
    """Per query pid what sets its identity apart in the gallery: the mean L2-normalised
    gallery embedding of that identity minus the mean L2-normalised embedding of the whole
    gallery. A query without gallery images of its identity uses its own (normalised) row of
    ``fallback`` in place of the identity mean; a gallery of one identity, where the difference
    vanishes, the uncentred mean."""
    g = F.normalize(gallery_feats.float(), dim=1)
    centre = g.mean(dim=0)
    rows = []
    for i, pid in enumerate(query_pids):
        same = gallery_pids == int(pid)
        own = g[same].mean(dim=0) if bool(same.any()) else F.normalize(fallback[i].float(), dim=0)
        diff = own - centre
        rows.append(diff if float(diff.norm()) > 1e-6 else own)
    return torch.stack(rows)


def plot_activation_maps(
    rgb: Sequence[np.ndarray],
    maps: ActivationMaps,
    labels: Sequence[str],
    *,
    title: str,
) -> Figure:
    """One column per image: the image, then one heat-map overlay per target layer; on the
    erased row the erased window is outlined in white."""
    rows = ["image", *maps.cams]
    n = len(rgb)
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.45 * n + 0.4, 2.75 * len(rows)), squeeze=False
    )
    for col in range(n):
        img = rgb[col]
        for row, name in enumerate(rows):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.imshow(img)
            if name == "image":
                ax.set_title(labels[col], fontsize=8)
                continue
            ax.imshow(maps.cams[name][col].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if name == "erased" and maps.erased is not None:
                _outline(ax, maps.erased[col].numpy(), img.shape[:2])
            if col == 0:
                ax.set_ylabel(_TITLES[name], fontsize=8)
    note = "red = strongest evidence (each map scaled to its maximum)"
    if maps.erased is not None:
        note += "; dashed box = erased window"
    fig.suptitle(f"{title}\n{note}", fontsize=9)
    fig.tight_layout()
    return fig


def _outline(ax: plt.Axes, cells: np.ndarray, size: tuple[int, int]) -> None:
    """Outline the bounding box of the ``True`` cells of a ``(h, w)`` map on an image."""
    ys, xs = np.nonzero(cells)
    if len(ys) == 0:
        return
    sy, sx = size[0] / cells.shape[0], size[1] / cells.shape[1]
    y0, x0 = ys.min() * sy, xs.min() * sx
    h, w = (ys.max() + 1) * sy - y0, (xs.max() + 1) * sx - x0
    ax.add_patch(
        Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, edgecolor="white", lw=1.5, ls="--")
    )


def label(pid: int, camid: int, modality: int) -> str:
    return f"id {pid} c{camid + 1} {_MODALITY.get(modality, '?')}"


def pick_queries(query: Sequence[Record], count: int, *, benchmark: bool = True) -> list[int]:
    """``count`` query indices, evenly spaced over the distinct identities (first image of each;
    on the benchmarks distractors and junk, pid <= 0, are left out)."""
    first: dict[int, int] = {}
    for i, r in enumerate(query):
        if (r.pid > 0 or not benchmark) and r.pid not in first:
            first[r.pid] = i
    chosen = list(first.values())
    if not chosen:
        raise ValueError("no query image to draw activation maps for (the query set is empty)")
    at = np.linspace(0, len(chosen) - 1, min(count, len(chosen))).round().astype(int)
    return [chosen[i] for i in dict.fromkeys(at.tolist())]


def load_images(
    records: Sequence[Record], image_size: tuple[int, int]
) -> tuple[Tensor, list[np.ndarray]]:
    """The records' images as the model sees them at test time ``(B, 3, H, W)`` and as RGB
    arrays of the same size for display."""
    transform = eval_transform(*image_size)
    rgb = [read_image(r.path) for r in records]
    batch = torch.stack([transform(img) for img in rgb])
    shown = [
        cv2.resize(img, (image_size[1], image_size[0]), interpolation=cv2.INTER_AREA) for img in rgb
    ]
    return batch, shown


def activation_maps_figure(
    model: nn.Module,
    query: Sequence[Record],
    embeddings: dict[str, Tensor],
    *,
    image_size: tuple[int, int],
    count: int = 6,
    benchmark: bool = True,
    title: str = "",
) -> Figure:
    """The activation-map figure of ``count`` query images of distinct identities (the
    references come from the gallery embeddings of ``embeddings``, see the module docstring)."""
    shown = pick_queries(query, count, benchmark=benchmark)
    records = [query[i] for i in shown]
    images, rgb = load_images(records, image_size)
    cross = bool(getattr(model, "cross_modality", False)) or any(r.modality for r in query)
    modality = torch.tensor([r.modality for r in records]) if cross else None
    refs = identity_references(
        [r.pid for r in records],
        embeddings["gallery_feats"],
        embeddings["gallery_pids"],
        embeddings["query_feats"][shown],
    )
    maps = activation_maps(model, images, modality, refs)
    labels = [label(r.pid, r.camid, r.modality) for r in records]
    return plot_activation_maps(rgb, maps, labels, title=title)
