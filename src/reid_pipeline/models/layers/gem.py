"""Generalized-mean pooling (Radenović et al., TPAMI 2018), as AGW uses it (p = 3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GeM(nn.Module):
    """``(mean(x.clamp(eps)^p))^(1/p)`` over H, W; ``p`` learnable unless ``learn_p=False``.

    p = 1 is average pooling, p -> inf approaches max pooling.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, *, learn_p: bool = False) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM p must be > 0, got {p}")
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learn_p)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, H, W) -> (B, C); pooled in fp32 so bf16 autocast does not overflow x^p
        x = x.float().clamp(min=self.eps).pow(self.p)
        return x.mean(dim=(-2, -1)).pow(1.0 / self.p)
