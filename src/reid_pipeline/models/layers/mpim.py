"""MPIM - Multi-Perception Interaction Module of FIENet (ICME 2023, visible-infrared ReID).

Known (abstract only): MPIM makes diverse "perceptions" of the feature interact so the network
focuses on discriminative body parts in both modalities.

Ours (docs/models.md), selective-kernel style (Li et al., "Selective Kernel
Networks", CVPR 2019): parallel 3x3 conv + BN + ReLU branches with dilations ``dilations``
(default 1, 2, 3: three receptive fields = three perceptions); a shared descriptor of their sum
(global average pool -> Linear -> BN -> ReLU, width ``max(C // reduction, min_dim)``) gives each
branch per-channel logits; a softmax across branches weights them (the interaction); the weighted
sum is added to the input (``residual``, default on). The branch convolutions are grouped
(``groups``, SKNet's 32) so three full-width 3x3 branches stay affordable on ResNet-50's 2048
channels (4.61M parameters on ResNet-50 with its 2048 channels, instead of 113M).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class MPIM(nn.Module):
    """``(B, C, H, W) -> (B, C, H, W)``: ``x + sum_k w_k * branch_k(x)`` (``residual``).

    Args:
        channels: C.
        dilations: one 3x3 branch per dilation.
        groups: groups of the branch convolutions (must divide C).
        reduction, min_dim: the shared descriptor's width is ``max(C // reduction, min_dim)``.
        residual: add the input back (default) or return the weighted sum alone.
    """

    def __init__(
        self,
        channels: int,
        *,
        dilations: Sequence[int] = (1, 2, 3),
        groups: int = 32,
        reduction: int = 16,
        min_dim: int = 32,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if len(dilations) < 1 or not all(isinstance(d, int) and d >= 1 for d in dilations):
            raise ValueError(f"mpim_dilations must be positive ints, got {list(dilations)!r}")
        if groups < 1 or channels % groups:
            raise ValueError(
                f"mpim_groups = {groups} must divide the MPIM width ({channels} channels)"
            )
        if reduction < 1 or min_dim < 1:
            raise ValueError(
                f"mpim_reduction and mpim_min_dim must be >= 1, got {reduction}, {min_dim}"
            )
        self.channels, self.residual = channels, residual
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=d, dilation=d, groups=groups, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            )
            for d in dilations
        )
        dim = max(channels // reduction, min_dim)
        self.squeeze = nn.Sequential(
            nn.Linear(channels, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True)
        )
        self.select = nn.Linear(dim, channels * len(dilations))

    def branch_weights(self, feats: Tensor) -> Tensor:
        """Softmax weights (B, K, C) from the branch outputs ``feats`` (B, K, C, H, W)."""
        desc = feats.sum(dim=1).mean(dim=(2, 3))  # (B, C) descriptor of the branches' sum
        logits = self.select(self.squeeze(desc))  # (B, K * C)
        return logits.view(feats.shape[0], len(self.branches), self.channels).softmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        feats = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, K, C, H, W)
        weights = self.branch_weights(feats)  # (B, K, C)
        fused = (feats * weights[..., None, None]).sum(dim=1)  # (B, C, H, W)
        return x + fused if self.residual else fused  # (B, C, H, W)
