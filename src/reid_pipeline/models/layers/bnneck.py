"""BNNeck (Luo et al., "Bag of Tricks", CVPRW 2019): BatchNorm1d with a frozen zero bias between
the triplet feature and a bias-free classifier."""

from __future__ import annotations

from torch import Tensor, nn


class BNNeck(nn.Module):
    """``feat -> BN (bias frozen at 0) -> bias-free Linear -> logits``.

    ``forward`` returns ``(bn_feat, logits)``; ``logits`` is None when ``num_classes`` is 0.
    Parameters are named ``bnneck`` and ``classifier`` (the optimiser's groups match on them).
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.bnneck = nn.BatchNorm1d(in_dim)
        self.bnneck.bias.requires_grad_(False)
        nn.init.ones_(self.bnneck.weight)
        nn.init.zeros_(self.bnneck.bias)
        self.classifier = nn.Linear(in_dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor | None]:
        bn_feat = self.bnneck(feat)  # (B, D)
        logits = self.classifier(bn_feat) if self.classifier is not None else None
        return bn_feat, logits
