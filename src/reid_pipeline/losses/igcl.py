"""IGCL - Identity-Guided Center Loss of FIENet (Fine-grained Information Exploration Network,
ICME 2023, visible-infrared re-identification).

Known (abstract only): an identity-guided centre loss supervises identities with intra- and
inter-identity information around feature centres.

Ours (the formula is not public; see docs/models.md, FIENet): per identity k of the batch,
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
``branches`` given), as the package's metric losses do (``losses/functional.py``), in float32
with autocast off. The loss runs without host syncs: identities sit in ``B`` fixed slots (the
slot of a pid is its rank among the batch's distinct pids, as in ``pids.unique()``; slots past the
number of identities stay empty and are masked out) instead of the data-dependent sizes of
``unique`` and boolean indexing. ``modality_centers`` keeps the compact form for inspection.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid_pipeline.losses.functional import (
    check_bool,
    check_branches,
    fp32,
    masked_mean,
    select_branches,
)
from reid_pipeline.losses.registry import register_loss
from reid_pipeline.models.base import ReidOutput


def modality_centers(
    feats: Tensor, pids: Tensor, modality: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per-identity centres, identities in ``pids.unique()`` order (compact, with host syncs:
    for inspection and tests; the loss uses ``slot_centers``).

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


def identity_slots(pids: Tensor) -> tuple[Tensor, Tensor]:
    """``(slot (B,), n_ids ())`` without a host sync: ``slot[i]`` is the rank of ``pids[i]``
    among the distinct pids of the batch (``pids.unique(return_inverse=True)[1]``), ``n_ids``
    the number of distinct pids (a tensor)."""
    b = pids.shape[0]
    same = pids[:, None] == pids[None, :]  # (B, B)
    earlier = torch.ones(b, b, dtype=torch.bool, device=pids.device).tril(-1)  # j < i
    first = ~(same & earlier).any(dim=1)  # (B,) first occurrence of its pid
    smaller = pids[None, :] < pids[:, None]  # (B, B): pids[j] < pids[i]
    slot = (first[None, :] & smaller).sum(dim=1)  # (B,)
    return slot, first.sum()


def slot_centers(
    feats: Tensor, pids: Tensor, modality: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``modality_centers`` in ``B`` fixed slots, without host syncs.

    Returns ``(n_ids (), cV (B, D), cI (B, D), has_v (B,), has_i (B,))``: slot ``s < n_ids`` holds
    the identity of rank ``s`` (the rows of ``modality_centers``, same values), the other slots are
    zero and flagged False in both modalities.
    """
    slot, n_ids = identity_slots(pids)
    b = pids.shape[0]
    centers, present = [], []
    for m in (0, 1):
        mask = modality == m  # (B,)
        counts = torch.zeros(b, dtype=torch.long, device=pids.device).index_add(
            0, slot, mask.long()
        )  # (B,)
        rows = torch.where(mask.unsqueeze(1), feats, 0.0)  # (B, D): other modality's rows zero
        sums = feats.new_zeros((b, feats.shape[1])).index_add(0, slot, rows)
        centers.append(sums / counts.clamp(min=1).unsqueeze(1).to(feats.dtype))  # (B, D)
        present.append(counts > 0)
    return n_ids, centers[0], centers[1], present[0], present[1]


@fp32
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
    n_ids, c_v, c_i, has_v, has_i = slot_centers(feats, pids, modality)
    intra = masked_mean((c_v - c_i).norm(dim=1), has_v & has_i)  # 0 when no identity has both
    fv, fi = has_v.to(feats.dtype), has_i.to(feats.dtype)
    w_v = fv / (fv + fi).clamp(min=1.0)  # (B,) 1, 0 or 1/2; 0 in empty slots
    c = w_v.unsqueeze(1) * c_v + (1.0 - w_v).unsqueeze(1) * c_i  # (B, D), empty slots zero
    # exact differences (no GEMM), O(B^2) memory rather than the (B, B, D) of an explicit diff
    dist = torch.cdist(c, c, compute_mode="donot_use_mm_for_euclid_dist")  # (B, B)
    used = torch.arange(c.shape[0], device=c.device) < n_ids  # (B,) slots holding an identity
    other = used[:, None] & used[None, :]
    other.fill_diagonal_(False)
    nearest = dist.masked_fill(~other, torch.finfo(dist.dtype).max).min(dim=1).values  # (B,)
    # one identity: nearest stays at the fill, relu gives 0 (a zero with a graph)
    inter = masked_mean(F.relu(rho - nearest), used)
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

    @fp32
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
