"""FIENet - Fine-grained Information Exploration Network for visible-infrared person
re-identification (ICME 2023).

Known (the abstract; no code or full text is public): PFAM progressively aggregates mid-level
features; MPIM makes diverse "perceptions" interact; together they focus on discriminative body
parts in both modalities; IGCL, an identity-guided centre loss, supervises identities with intra-
and inter-identity information around feature centres. Built on the cross-modality AGW baseline.

Ours (docs/models.md; every uncertain choice is an option below):
- the trunk is the cross-modality AGW baseline, built from the same blocks as
  :mod:`reid_pipeline.models.agw`: modality-specific stems, shared layer1-4 with AGW's non-local
  blocks (``layers/non_local.py``), GeM (p = 3) -> BNNeck -> classifier (``layers/head.py``);
  test embedding the post-BN feature;
- PFAM (``layers/pfam.py``): layer 2, 3, 4 projected to a narrow width (1x1 conv), then
  ``a3 = fuse(p3, down(p2))``, ``a4 = fuse(p4, down(a3))`` with strided 3x3 conv + BN + ReLU
  down-sampling and concat + 1x1 conv (or sum) fusions, projected back and added to layer 4
  (zero-initialised BN: a new PFAM is the identity); its output feeds MPIM. 2.89M parameters on
  ResNet-50 (PFAM + MPIM: 7.50M, beside the trunk's 23.5M);
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

from reid_pipeline.models.base import ReidModel, ReidOutput
from reid_pipeline.models.layers.backbone import build_backbone
from reid_pipeline.models.layers.checks import check_bool, check_choice, check_positive_int
from reid_pipeline.models.layers.head import NECK_FEATS, ReidHead
from reid_pipeline.models.layers.mpim import MPIM
from reid_pipeline.models.layers.non_local import NonLocalStages
from reid_pipeline.models.layers.pfam import PFAM
from reid_pipeline.models.registry import register_model


@register_model("fienet")
class FIENet(ReidModel):
    """Cross-modality AGW + PFAM + MPIM.

    Args:
        num_classes, backbone, pretrained, last_stride, neck_feat, non_local,
        non_local_reduction, non_local_inter_channels, non_local_mode, non_local_width, pool,
        gem_p,
        gem_learn_p: as for :class:`~reid_pipeline.models.agw.AGW` (the trunk is always the
        two-stream, cross-modality one; ``gem_learn_p=None`` keeps p fixed, as its code does).
        use_pfam: PFAM on (default) or off (MPIM / head then read layer 4).
        pfam_fusion: ``"concat"`` (concatenate + 1x1 conv + BN + ReLU) or ``"sum"``.
        pfam_channels: PFAM's aggregation width (default layer 4's width / 8: 256 on
            ResNet-50, PFAM then holds 2.89M parameters); its output keeps layer 4's width.
        pfam_groups: groups of PFAM's 3x3 down-convolutions (default 1; must divide the width).
        use_mpim: MPIM on (default) or off.
        mpim_dilations: one 3x3 branch per dilation (default 1, 2, 3).
        mpim_groups: groups of the branch convolutions (default 32; must divide the width).
        mpim_reduction, mpim_min_dim: descriptor width ``max(C // reduction, min_dim)``.
        mpim_residual: add MPIM's input back (default) or not.
    """

    cross_modality = True

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
        non_local_width: str = "corrected",
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
        super().__init__()
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.neck_feat = check_choice("neck_feat", neck_feat, NECK_FEATS)
        learn_p = bool(gem_learn_p)  # None -> fixed p, as AGW's cross-modality code
        # built in this order (trunk, head, non-local blocks, PFAM, MPIM): the initialisation
        # draws and the state-dict order of checkpoints follow it
        self.backbone = build_backbone(
            backbone, pretrained=pretrained, last_stride=last_stride, two_stream=True
        )
        _, c2, c3, c4 = self.backbone.out_channels
        self.feat_dim = c4
        self.head = ReidHead(c4, num_classes, pool=pool, gem_p=gem_p, gem_learn_p=learn_p)
        self.non_local = NonLocalStages.for_backbone(
            self.backbone,
            non_local,
            reduction=non_local_reduction,
            inter_channels=non_local_inter_channels,
            mode=non_local_mode,
            width=non_local_width,
        )
        check_bool("use_pfam", use_pfam)
        check_bool("use_mpim", use_mpim)
        self.pfam = (
            PFAM(
                (c2, c3, c4),
                last_stride=last_stride,
                fusion=pfam_fusion,
                inner_channels=pfam_channels,
                groups=pfam_groups,
            )
            if use_pfam
            else None
        )
        self.mpim = (
            MPIM(
                c4,
                dilations=mpim_dilations,
                groups=mpim_groups,
                reduction=mpim_reduction,
                min_dim=mpim_min_dim,
                residual=mpim_residual,
            )
            if use_mpim
            else None
        )

    def forward(
        self, images: Tensor, targets: Tensor | None = None, modality: Tensor | None = None
    ) -> ReidOutput | Tensor:
        """``targets`` is unused; ``modality`` (required) routes the two stems."""
        split = self.check_inputs(images, modality)
        _, x2, x3, x4 = self.non_local(self.backbone, images, split)  # layer1..4, non-local
        x = self.pfam(x2, x3, x4) if self.pfam is not None else x4  # (B, C, H/16, W/16)
        x = self.mpim(x) if self.mpim is not None else x  # (B, C, H/16, W/16)
        return self.head.reid_output(x, training=self.training, neck_feat=self.neck_feat)
