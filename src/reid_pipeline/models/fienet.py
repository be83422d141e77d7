"""FIENet - Fine-grained Information Exploration Network for visible-infrared person
re-identification (ICME 2023).

Known (the abstract; no code or full text is public): PFAM progressively aggregates mid-level
features; MPIM makes diverse "perceptions" interact; together they focus on discriminative body
parts in both modalities; IGCL, an identity-guided centre loss, supervises identities with intra-
and inter-identity information around feature centres. Built on the cross-modality AGW baseline.

Ours (../shared/design/MODELS.md; every uncertain choice is an option below):
- the trunk is the cross-modality AGW baseline (:mod:`reid_pipeline.models.agw`): modality-
  specific stems, shared layer1-4 with AGW's non-local blocks, GeM (p = 3) -> BNNeck ->
  classifier; test embedding the post-BN feature;
- PFAM (``layers/pfam.py``): ``a3 = fuse(layer3, down(layer2))``, ``a4 = fuse(layer4,
  down(a3))`` with strided 3x3 conv + BN + ReLU down-sampling and concat + 1x1 conv (or sum)
  fusions; ``a4`` feeds MPIM;
- MPIM (``layers/mpim.py``): three parallel 3x3 branches with dilations 1 / 2 / 3, per-channel
  softmax branch weights from a shared descriptor of their sum (selective-kernel style), residual;
- IGCL is a loss (``losses/igcl.py``); the paper's objective is ``ce + wrt + igcl`` in parameters.

With ``use_pfam=False, use_mpim=False`` the model *is* the cross-modality AGW baseline (same
parameter names and outputs), which makes the ablations direct.

Training output: ``ReidOutput(logits=[logits], feats=[feat])`` (``feat`` the pre-BN GeM feature
for the triplet and IGCL losses); eval: ``(B, feat_dim)`` post-BN (``neck_feat="after"``).
Parameter names: ``backbone.*``, ``non_local.*``, ``pfam.*``, ``mpim.*``, ``head.neck.bnneck.*``,
``head.neck.classifier.*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from reid_pipeline.models.agw import AGW
from reid_pipeline.models.layers.head import ReidHead
from reid_pipeline.models.layers.miim import check_modality_values
from reid_pipeline.models.layers.mpim import MPIM
from reid_pipeline.models.layers.pfam import PFAM
from reid_pipeline.models.registry import register_model


class FIENet(AGW):
    """Cross-modality AGW + PFAM + MPIM.

    Args (the AGW ones are passed through; see :func:`reid_pipeline.models.agw.build_agw`):
        num_classes, backbone, pretrained, last_stride, neck_feat, non_local,
        non_local_reduction, non_local_inter_channels, non_local_mode, pool, gem_p,
        gem_learn_p: as for AGW (the trunk is always the two-stream, cross-modality one).
        use_pfam: PFAM on (default) or off (MPIM / head then read layer 4).
        pfam_fusion: ``"concat"`` (concatenate + 1x1 conv + BN + ReLU) or ``"sum"``.
        pfam_channels: PFAM's output width (default: layer 4's); ``"concat"`` only.
        pfam_groups: groups of PFAM's 3x3 down-convolutions (default 1; 32 cuts PFAM from
            34.1M to 11.2M parameters on ResNet-50).
        use_mpim: MPIM on (default) or off.
        mpim_dilations: one 3x3 branch per dilation (default 1, 2, 3).
        mpim_groups: groups of the branch convolutions (default 32; must divide the width).
        mpim_reduction, mpim_min_dim: descriptor width ``max(C // reduction, min_dim)``.
        mpim_residual: add MPIM's input back (default) or not.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool | str | Path = False,
        last_stride: int = 1,
        neck_feat: str = "after",
        non_local: Sequence[int] | None = None,
        non_local_reduction: int = 2,
        non_local_inter_channels: int | None = None,
        non_local_mode: str = "dot_product",
        pool: str = "gem",
        gem_p: float = 3.0,
        gem_learn_p: bool | None = None,
        use_pfam: bool = True,
        pfam_fusion: str = "concat",
        pfam_channels: int | None = None,
        pfam_groups: int = 1,
        use_mpim: bool = True,
        mpim_dilations: Sequence[int] = (1, 2, 3),
        mpim_groups: int = 32,
        mpim_reduction: int = 16,
        mpim_min_dim: int = 32,
        mpim_residual: bool = True,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            backbone=backbone,
            pretrained=pretrained,
            last_stride=last_stride,
            neck_feat=neck_feat,
            cross_modality=True,
            non_local=non_local,
            non_local_reduction=non_local_reduction,
            non_local_inter_channels=non_local_inter_channels,
            non_local_mode=non_local_mode,
            pool=pool,
            gem_p=gem_p,
            gem_learn_p=gem_learn_p,
        )
        for key, value in (("use_pfam", use_pfam), ("use_mpim", use_mpim)):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, got {value!r}")
        _, c2, c3, c4 = self.backbone.out_channels
        width = c4
        self.pfam = (
            PFAM(
                (c2, c3, c4),
                last_stride=last_stride,
                fusion=pfam_fusion,
                out_channels=pfam_channels,
                groups=pfam_groups,
            )
            if use_pfam
            else None
        )
        if self.pfam is not None:
            width = self.pfam.out_channels
        self.mpim = (
            MPIM(
                width,
                dilations=mpim_dilations,
                groups=mpim_groups,
                reduction=mpim_reduction,
                min_dim=mpim_min_dim,
                residual=mpim_residual,
            )
            if use_mpim
            else None
        )
        if width != self.feat_dim:  # PFAM changed the width: the head follows it
            learn_p = bool(gem_learn_p)  # None -> fixed p, as AGW's cross-modality variant
            self.head = ReidHead(width, num_classes, pool=pool, gem_p=gem_p, gem_learn_p=learn_p)
            self.feat_dim = width

    def forward_features(self, images: Tensor, modality: Tensor | None = None) -> Tensor:
        """The map the head pools: MPIM(PFAM(layer2, layer3, layer4)) ``(B, feat_dim, h, w)``."""
        modality = check_modality_values(modality)
        _, x2, x3, x4 = self.forward_stages(images, modality)  # layer2..4 with non-local blocks
        x = self.pfam(x2, x3, x4) if self.pfam is not None else x4  # (B, C, H/16, W/16)
        return self.mpim(x) if self.mpim is not None else x  # (B, C, H/16, W/16)


@register_model("fienet")
def build_fienet(*, num_classes: int, **kwargs: object) -> FIENet:
    """Build FIENet; ``kwargs`` are :class:`FIENet`'s keyword-only options."""
    return FIENet(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
