"""IGCL - Identity-Guided Center Loss of FIENet (Fine-grained Information Exploration Network,
ICME 2023, visible-infrared re-identification).

Known (abstract only): an identity-guided centre loss supervises identities with intra- and
inter-identity information around feature centres.

Ours (the formula is not public; see ../shared/design/MODELS.md): per identity k of the batch,
visible centre ``cV_k`` and infrared centre ``cI_k`` (means of that identity's features in each
modality) and ``c_k`` their mean,

    L_intra = mean_k ||cV_k - cI_k||                           (pull the modalities together)
    L_inter = mean_k relu(rho - min_{l != k} ||c_k - c_l||)    (push identity centres apart)
    IGCL    = lam * (L_intra + L_inter)

Identities present in only one modality contribute to ``L_inter`` (``c_k`` is then that
modality's centre) but not to ``L_intra``; a batch with no identity in both modalities has
``L_intra = 0`` and a batch with one identity ``L_inter = 0`` (zeros that still carry a gradient).
``normalize`` (ours, default on) L2-normalises the features first, which makes ``rho`` a cosine-
scale margin (distances of unit vectors lie in [0, 2]) and stops ``L_intra`` from being lowered by
shrinking the features. The loss reads ``output.feats`` (every branch, summed, or the
``branches`` given), as the package's metric losses do (``losses/functional.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid_pipeline.losses.functional import check_bool, check_branches, select_branches
from reid_pipeline.losses.registry import register_loss
from reid_pipeline.models.base import ReidOutput


def modality_centers(
    feats: Tensor, pids: Tensor, modality: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per-identity centres, identities in ``pids.unique()`` order.

    Returns ``(ids (n,), cV (n, D), cI (n, D), has_v (n,), has_i (n,))``; a centre of an identity
    absent from a modality is zero and flagged False.
    """
    ids, inverse = pids.unique(return_inverse=True)  # (n,), (B,)
    n = ids.shape[0]
    centers, present = [], []
    for m in (0, 1):
        mask = modality == m  # (B,)
        counts = torch.bincount(inverse[mask], minlength=n)  # (n,)
        sums = feats.new_zeros((n, feats.shape[1])).index_add(0, inverse[mask], feats[mask])
        centers.append(sums / counts.clamp(min=1).unsqueeze(1).to(feats.dtype))  # (n, D)
        present.append(counts > 0)
    return ids, centers[0], centers[1], present[0], present[1]


def igcl_terms(
    feats: Tensor, pids: Tensor, modality: Tensor, *, rho: float = 0.5, normalize: bool = True
) -> tuple[Tensor, Tensor]:
    """``(L_intra, L_inter)`` on features (B, D); see the module docstring."""
    if feats.ndim != 2 or feats.shape[0] != pids.shape[0] or modality.shape != pids.shape:
        raise ValueError(
            f"igcl: expected feats (B, D) with pids and modality of shape (B,), got "
            f"{tuple(feats.shape)}, {tuple(pids.shape)}, {tuple(modality.shape)}"
        )
    feats = feats.float()
    if normalize:
        feats = F.normalize(feats, dim=1)  # (B, D)
    _, c_v, c_i, has_v, has_i = modality_centers(feats, pids, modality)
    zero = feats.sum() * 0.0  # zero carrying a gradient
    both = has_v & has_i  # (n,)
    intra = (c_v[both] - c_i[both]).norm(dim=1).mean() if bool(both.any()) else zero
    w_v = has_v.to(feats.dtype) / (has_v.to(feats.dtype) + has_i.to(feats.dtype))  # (n,)
    c = w_v.unsqueeze(1) * c_v + (1.0 - w_v).unsqueeze(1) * c_i  # (n, D)
    n = c.shape[0]
    if n < 2:
        return intra, zero
    dist = (c[:, None, :] - c[None, :, :]).norm(dim=2)  # (n, n)
    eye = torch.eye(n, dtype=torch.bool, device=c.device)
    nearest = dist.masked_fill(eye, float("inf")).min(dim=1).values  # (n,)
    inter = F.relu(rho - nearest).mean()
    return intra, inter


@register_loss("igcl")
class IGCLLoss(nn.Module):
    """``lam * (L_intra + L_inter)`` on ``output.feats`` (summed over ``branches``; all when None).

    Options: ``lam`` (default 1), ``rho`` the inter-identity margin, ``normalize`` the features
    first, ``branches`` the indices of ``output.feats`` to read.
    """

    def __init__(
        self,
        *,
        lam: float = 1.0,
        rho: float = 0.5,
        normalize: bool = True,
        branches: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("lam", lam), ("rho", rho)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"igcl: {name} must be a number >= 0, got {value!r}")
        self.lam, self.rho = float(lam), float(rho)
        self.normalize = check_bool("igcl", "normalize", normalize)
        self.branches = check_branches("igcl", branches)

    def forward(self, output: ReidOutput, pids: Tensor, modality: Tensor | None = None) -> Tensor:
        if modality is None:
            raise ValueError("igcl is a cross-modality loss: pass modality (0 visible, 1 IR)")
        values = []
        for _, feats in select_branches("igcl", "feats", output.feats, self.branches):
            intra, inter = igcl_terms(feats, pids, modality, rho=self.rho, normalize=self.normalize)
            values.append(intra + inter)
        return self.lam * torch.stack(values).sum()

    def extra_repr(self) -> str:
        return (
            f"lam={self.lam}, rho={self.rho}, normalize={self.normalize}, branches={self.branches}"
        )
