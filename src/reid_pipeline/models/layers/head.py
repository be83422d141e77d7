"""The standard ReID head: global pooling -> feature -> BNNeck -> bias-free classifier.

The head of the "Bag of Tricks" baseline (Luo et al., CVPRW 2019) and of AGW (Ye et al., TPAMI
2021, with GeM pooling). It returns the three tensors every such model needs: the pooled feature
(pre-BN, where the metric losses act), the post-BN feature (the usual test embedding) and the
identity logits. Parameter names contain ``neck.bnneck`` and ``neck.classifier`` so the
optimiser's groups match them.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from reid_pipeline.models.base import ReidOutput
from reid_pipeline.models.layers.bnneck import BNNeck
from reid_pipeline.models.layers.gem import GeM

POOLINGS = ("avg", "max", "gem")
#: test embedding of a BNNeck head: after the BNNeck (BoT's default) or the pooled feature
NECK_FEATS = ("after", "before")


class HeadOutput(NamedTuple):
    feat: Tensor  # (B, D) pooled, before BNNeck
    bn_feat: Tensor  # (B, D) after BNNeck
    logits: Tensor | None  # (B, num_classes), None when num_classes == 0


def build_pool(pool: str, *, gem_p: float = 3.0, gem_learn_p: bool = False) -> nn.Module:
    """``"avg"`` / ``"max"`` global pooling, or ``"gem"`` (generalised mean with ``gem_p``)."""
    if pool == "avg":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    if pool == "max":
        return nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(1))
    if pool == "gem":
        return GeM(gem_p, learn_p=gem_learn_p)
    raise ValueError(f"pool must be one of {POOLINGS}, got {pool!r}")


class ReidHead(nn.Module):
    """``(B, C, H, W) -> HeadOutput(feat, bn_feat, logits)``.

    Args:
        in_dim: channels of the input map (= feature size).
        num_classes: identities of the classifier (0: no classifier, ``logits`` is None).
        pool: ``"avg"``, ``"max"`` or ``"gem"``.
        gem_p, gem_learn_p: GeM exponent and whether it is learned (``pool="gem"`` only).
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        pool: str = "avg",
        gem_p: float = 3.0,
        gem_learn_p: bool = False,
    ) -> None:
        super().__init__()
        self.pool = build_pool(pool, gem_p=gem_p, gem_learn_p=gem_learn_p)
        self.neck = BNNeck(in_dim, num_classes)

    def forward(self, x: Tensor) -> HeadOutput:
        feat = self.pool(x)  # (B, C)
        bn_feat, logits = self.neck(feat)  # (B, C), (B, num_classes)
        return HeadOutput(feat, bn_feat, logits)

    def reid_output(self, x: Tensor, *, training: bool, neck_feat: str) -> ReidOutput | Tensor:
        """The contract's output of a one-head model on the map ``x`` ``(B, C, H, W)``: in
        training ``ReidOutput(logits=[logits], feats=[feat])`` (the pooled pre-BN feature for the
        metric losses), else the ``(B, C)`` embedding, post-BN (``neck_feat="after"``) or the
        pooled feature (``"before"``)."""
        out = self(x)
        if not training:
            return out.bn_feat if neck_feat == "after" else out.feat  # (B, C)
        assert out.logits is not None  # a model head always has a classifier
        return ReidOutput(logits=[out.logits], feats=[out.feat])
