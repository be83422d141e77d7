"""AGW - Attention Generalized mean pooling with Weighted triplet loss.

Reference: M. Ye, J. Shen, G. Lin, T. Xiang, L. Shao, S. C. H. Hoi, "Deep Learning for Person
Re-identification: A Survey and Outlook", IEEE TPAMI 2021. Official code: single-modality
github.com/mangye16/ReID-Survey (``modeling/baseline.py``, ``backbones/resnet_nl.py``,
``layer/non_local.py``, ``layer/gem_pool.py``); cross-modality github.com/mangye16/
Cross-Modal-Re-ID-baseline (``model.py``, ``embed_net``).

Taken from the paper and the official code:

- BoT's trunk and head (``layers/backbone.py``, ``layers/head.py``): ResNet-50 with last stride 1,
  BNNeck with a frozen shift, bias-free classifier (std 0.001), post-BN test feature.
- Non-local attention: dot-product non-local blocks (``W`` BN initialised to zero) after the last
  2 residual blocks of layer2 and the last 3 of layer3 (block indices 2, 3 and 3, 4, 5 on
  ResNet-50; ``non_local=(0, 2, 3, 0)``), see :mod:`reid_pipeline.models.layers.non_local`.
- GeM pooling with p = 3 instead of average pooling. The single-modality code learns p (initial 3);
  the cross-modality code keeps it fixed: ``gem_learn_p=None`` follows the variant built.
- Cross-modality variant: a modality-specific stem (conv1/bn1/relu/maxpool per modality) and shared
  layer1-4 (+ the non-local blocks), i.e. :class:`~reid_pipeline.models.layers.backbone.
  TwoStreamResNet`, selected by ``cross_modality=True``.
- The weighted regularised triplet is a loss (``reid_pipeline.losses``), not part of the model: the
  model returns the pre-BN feature for it and the logits for the identity loss.

Deviations (deliberate, documented):

- Non-local inner width: ``non_local_width="released"`` builds the released AGW code's
  ``reduc_ratio // reduc_ratio`` = 1 channel (28,687 non-local parameters on ResNet-50); the
  published AGW numbers come from that code, so the ``paper`` / ``paper_vi`` recipes use it.
  ``"corrected"`` (the default) is ``C // non_local_reduction`` (2, the non-local paper's; 7.36M
  parameters), what the authors called the intended setting (ReID-Survey issue #7).
- The single-modality ReID-Survey ``ResNetNL`` omits the ReLU after ``bn1`` (its "add missed relu"
  line is commented out); we keep torchvision's stem with the ReLU (as the cross-modality code).
- BNNeck weight starts at 1 (ReID-Survey); the cross-modality code draws it from N(1, 0.01).
- On trunks shallower than ResNet-50 (resnet18 has 2 blocks per stage) the default placement is
  capped at each stage's depth, e.g. ``(0, 2, 2, 0)``; an explicit ``non_local`` larger than a
  stage is an error.
- The test embedding is not L2-normalised here: the evaluation normalises (cosine distance).

Parameter names: ``backbone.*`` (ImageNet trunk, torchvision names), ``non_local.*`` (new
blocks), ``head.pool.p`` (GeM), ``head.neck.bnneck.*``, ``head.neck.classifier.*``. The AGW
recipe's groups (lr 0.1 for BNNeck + classifier, 0.01 elsewhere) match on these. Sizes and
switches: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from reid_pipeline.models.base import ReidModel, ReidOutput
from reid_pipeline.models.layers.backbone import build_backbone
from reid_pipeline.models.layers.checks import check_bool, check_choice, check_positive_int
from reid_pipeline.models.layers.head import NECK_FEATS, ReidHead
from reid_pipeline.models.layers.non_local import NonLocalStages
from reid_pipeline.models.layers.routing import ModalitySplit
from reid_pipeline.models.registry import register_model


@register_model("agw")
class AGW(ReidModel):
    """BoT's trunk and head + non-local blocks in the trunk + GeM pooling.

    Args:
        num_classes: training identities (classifier outputs).
        backbone: ``resnet18``, ``resnet34``, ``resnet50`` (the paper's) or ``resnet101``.
        pretrained: ``False``, ``"imagenet"`` or a path to a local weights file for the trunk.
        last_stride: stride of layer4's first block, 1 (AGW) or 2.
        stem_pool: the stem's max-pool, ``"torchvision"`` (padding 1; every recipe) or
            ``"fastreid"`` (padding 0, ``ceil_mode``; weights converted from fast-reid).
        neck_feat: test embedding, ``"after"`` BNNeck (default) or ``"before"``.
        cross_modality: modality-specific stems + shared layer1-4 (visible-infrared); the
            visible-infrared recipes (cpu_synthetic_vi, paper_vi) set it; ``forward`` then
            needs ``modality``.
        non_local: non-local blocks per stage, placed after the stage's last blocks; ``None`` =
            AGW's ``[0, 2, 3, 0]`` (capped at the stage depths of small trunks);
            ``[0, 0, 0, 0]`` disables them.
        non_local_reduction: inner width ``C // non_local_reduction`` of each block (2).
        non_local_inter_channels: fixed inner width instead (overrides the reduction; 1 is what
            the released AGW code builds).
        non_local_mode: ``"dot_product"`` (AGW) or ``"embedded_gaussian"`` (softmax).
        non_local_width: ``"corrected"`` (inner width ``C // non_local_reduction``) or
            ``"released"`` (1 inner channel, the released AGW code's).
        pool: ``"gem"`` (AGW), ``"avg"`` or ``"max"``.
        gem_p: GeM exponent (3).
        gem_learn_p: learn p; ``None`` = as the official code of the variant (learned in the
            single-modality code, fixed in the cross-modality code).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool | str | Path = False,
        last_stride: int = 1,
        stem_pool: str = "torchvision",
        neck_feat: str = "after",
        cross_modality: bool = False,
        non_local: Sequence[int] | None = None,
        non_local_reduction: int = 2,
        non_local_inter_channels: int | None = None,
        non_local_mode: str = "dot_product",
        non_local_width: str = "corrected",
        pool: str = "gem",
        gem_p: float = 3.0,
        gem_learn_p: bool | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.neck_feat = check_choice("neck_feat", neck_feat, NECK_FEATS)
        self.cross_modality = check_bool("cross_modality", cross_modality)
        if gem_learn_p is None:
            gem_learn_p = not cross_modality  # as each official code base does
        # built in this order (trunk, head, non-local blocks): the initialisation draws and the
        # state-dict order of checkpoints follow it
        self.backbone = build_backbone(
            backbone,
            pretrained=pretrained,
            last_stride=last_stride,
            two_stream=cross_modality,
            stem_pool=stem_pool,
        )
        self.feat_dim = self.backbone.out_channels[-1]
        self.head = ReidHead(
            self.feat_dim, num_classes, pool=pool, gem_p=gem_p, gem_learn_p=gem_learn_p
        )
        self.non_local = NonLocalStages.for_backbone(
            self.backbone,
            non_local,
            reduction=non_local_reduction,
            inter_channels=non_local_inter_channels,
            mode=non_local_mode,
            width=non_local_width,
        )

    def forward_stages(
        self, images: Tensor, modality: Tensor | ModalitySplit | None = None
    ) -> list[Tensor]:
        """Outputs of layer1..layer4 with the non-local blocks; the last is
        ``(B, feat_dim, H/16, W/16)`` with last stride 1."""
        return self.non_local(self.backbone, images, modality)

    def forward(
        self, images: Tensor, targets: Tensor | None = None, modality: Tensor | None = None
    ) -> ReidOutput | Tensor:
        """``targets`` is unused (AGW's branches do not depend on the labels); ``modality``
        routes the stems of the cross-modality variant."""
        split = self.check_inputs(images, modality)
        fmap = self.forward_stages(images, split)[-1]  # (B, C4, H/16, W/16)
        return self.head.reid_output(fmap, training=self.training, neck_feat=self.neck_feat)
