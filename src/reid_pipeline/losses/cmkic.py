"""CMKIC - Cross-Modality Key-Instance Contrastive loss, the core of WRIM-Net's AICL
(Wu et al., "WRIM-Net", 2024, arXiv:2408.10624).

Known (abstract and figures): the loss pulls same-identity samples of the *other* modality
closer, using the top-K hardest (least similar) cross-modality positives as key instances, and
auxiliary information from an earlier block supplements it.

Ours (the paper's formula is not public; see docs/models.md, WRIM-Net), with cosine
similarities ``s`` of the L2-normalised projections and temperature ``t``: for a visible anchor i,
``P_i`` = infrared samples of the same pid, ``N_i`` = infrared samples of other pids,
``KI_i`` = the ``k`` positives with the LOWEST similarity (all of ``P_i`` when it has fewer),

    L_VI = mean_i -1/|KI_i| sum_{p in KI_i} log(e^{s_ip/t} / (e^{s_ip/t} + S_i)),
    S_i  = sum_{n in N_i} e^{s_in/t}

and ``L_IV`` the same with infrared anchors; ``L_CMKIC = L_VI + L_IV``. The key instances are
chosen on detached similarities (selection is not differentiated; the chosen terms are). The
auxiliary term is the same loss on ``extras[aux_key]`` (WRIM-Net: layer-3 projections) with weight
``aux_weight`` (default 0.5). Anchors with no cross-modality positive are skipped; a direction
with no valid anchor contributes 0; a batch with none at all returns a zero that still carries a
(zero) gradient to the projections, so mixed-precision scalers and DDP see every parameter used.
An anchor without negatives contributes log(1) = 0 for each of its key instances. Computed in
float32 with autocast off and without host syncs (``losses/functional.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid_pipeline.losses.functional import fp32, masked_mean
from reid_pipeline.losses.registry import register_loss
from reid_pipeline.models.base import ReidOutput

_FILL = -1e9  # finite "minus infinity": an empty logsumexp must not give NaN gradients


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cross_modality_masks(pids: Tensor, modality: Tensor) -> tuple[Tensor, Tensor]:
    """``(pos, neg)``, each (B, B) bool: ``pos[i, j]`` - j has i's pid and the other modality;
    ``neg[i, j]`` - j has another pid and the other modality."""
    same_pid = pids[:, None] == pids[None, :]  # (B, B)
    cross = modality[:, None] != modality[None, :]  # (B, B)
    return same_pid & cross, ~same_pid & cross


def key_instance_mask(sim: Tensor, pos: Tensor, k: int) -> Tensor:
    """(B, B) bool: for each row, the ``k`` positives (``pos``) with the lowest ``sim``."""
    if k < 1:
        raise ValueError(f"cmkic: k must be a positive int, got {k!r}")
    k_eff = min(k, sim.shape[1])
    masked = sim.masked_fill(~pos, float("inf"))  # (B, B)
    idx = masked.topk(k_eff, dim=1, largest=False).indices  # (B, k)
    chosen = torch.zeros_like(pos).scatter_(1, idx, True)  # (B, B)
    return chosen & pos


def _check_inputs(z: Tensor, pids: Tensor, modality: Tensor) -> None:
    if z.ndim != 2 or z.shape[0] != pids.shape[0] or modality.shape != pids.shape:
        raise ValueError(
            f"cmkic: expected projections (B, D) with pids and modality of shape (B,), got "
            f"{tuple(z.shape)}, {tuple(pids.shape)}, {tuple(modality.shape)}"
        )


def _similarity(z: Tensor) -> tuple[Tensor, Tensor]:
    """``(z_normalised (B, D), sim (B, B))`` in float32; call with autocast off."""
    z = F.normalize(z.float(), dim=1)  # (B, D)
    return z, z @ z.t()  # cosine similarities


@fp32
def cmkic_key_instances(z: Tensor, pids: Tensor, modality: Tensor, *, k: int = 2) -> Tensor:
    """(B, B) bool: the key instances ``cmkic_loss`` picks for each anchor (row)."""
    _check_inputs(z, pids, modality)
    _, sim = _similarity(z)
    pos, _ = cross_modality_masks(pids, modality)
    return key_instance_mask(sim.detach(), pos, k)


@fp32
def cmkic_loss(
    z: Tensor, pids: Tensor, modality: Tensor, *, k: int = 2, temperature: float = 0.1
) -> Tensor:
    """``L_VI + L_IV`` on projections ``z`` (B, D); see the module docstring."""
    _check_inputs(z, pids, modality)
    if temperature <= 0:
        raise ValueError(f"cmkic: temperature must be > 0, got {temperature!r}")
    z, sim = _similarity(z)
    logits = sim / temperature  # (B, B)
    pos, neg = cross_modality_masks(pids, modality)
    key = key_instance_mask(sim.detach(), pos, k)  # (B, B)
    neg_lse = logits.masked_fill(~neg, _FILL).logsumexp(dim=1, keepdim=True)  # (B, 1)
    log_prob = logits - torch.logaddexp(logits, neg_lse)  # (B, B)
    n_key = key.sum(dim=1)  # (B,)
    per_anchor = -(log_prob * key).sum(dim=1) / n_key.clamp(min=1)  # (B,)
    valid = n_key > 0  # (B,)
    # L_VI (visible anchors) + L_IV (infrared anchors); a direction without anchors gives a zero
    # that still carries a (zero) gradient to z
    return masked_mean(per_anchor, valid & (modality == 0)) + masked_mean(
        per_anchor, valid & (modality == 1)
    )


@register_loss("cmkic")
class CMKICLoss(nn.Module):
    """CMKIC on ``output.extras[key]`` plus ``aux_weight`` x CMKIC on ``output.extras[aux_key]``.

    Options: ``k`` key instances per anchor, ``temperature``, ``aux_weight`` (0 or ``aux_key``
    None disables the auxiliary term), ``key`` / ``aux_key`` the extras names. An extras entry
    that is a list of tensors contributes the mean of the loss over its entries.
    """

    def __init__(
        self,
        *,
        k: int = 2,
        temperature: float = 0.1,
        aux_weight: float = 0.5,
        key: str = "proj",
        aux_key: str | None = "proj_aux",
    ) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"cmkic: k must be a positive int, got {k!r}")
        if not _is_number(temperature) or temperature <= 0:
            raise ValueError(f"cmkic: temperature must be a number > 0, got {temperature!r}")
        if not _is_number(aux_weight) or aux_weight < 0:
            raise ValueError(f"cmkic: aux_weight must be a number >= 0, got {aux_weight!r}")
        if not isinstance(key, str) or not (aux_key is None or isinstance(aux_key, str)):
            raise ValueError(
                f"cmkic: key and aux_key must be extras names (aux_key may be null), got "
                f"{key!r}, {aux_key!r}"
            )
        self.k, self.temperature, self.aux_weight = k, float(temperature), float(aux_weight)
        self.key, self.aux_key = key, aux_key

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, temperature={self.temperature}, aux_weight={self.aux_weight}, "
            f"key={self.key!r}, aux_key={self.aux_key!r}"
        )

    def _term(self, output: ReidOutput, name: str, pids: Tensor, modality: Tensor) -> Tensor:
        if name not in output.extras:
            raise ValueError(
                f"cmkic: the model output has no extras[{name!r}] (it has "
                f"{sorted(output.extras)}); set the loss's key/aux_key, or aux_weight: 0"
            )
        value = output.extras[name]
        tensors = value if isinstance(value, list) else [value]
        losses = [
            cmkic_loss(z, pids, modality, k=self.k, temperature=self.temperature) for z in tensors
        ]
        return torch.stack(losses).mean()

    @fp32
    def forward(self, output: ReidOutput, pids: Tensor, modality: Tensor | None = None) -> Tensor:
        if modality is None:
            raise ValueError("cmkic is a cross-modality loss: pass modality (0 visible, 1 IR)")
        loss = self._term(output, self.key, pids, modality)
        if self.aux_key is not None and self.aux_weight > 0:
            loss = loss + self.aux_weight * self._term(output, self.aux_key, pids, modality)
        return loss
