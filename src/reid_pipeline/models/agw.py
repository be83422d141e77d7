"""AGW - Attention Generalized mean pooling with Weighted triplet loss.

Reference: M. Ye, J. Shen, G. Lin, T. Xiang, L. Shao, S. C. H. Hoi, "Deep Learning for Person
Re-identification: A Survey and Outlook", IEEE TPAMI 2021. Official code: single-modality
github.com/mangye16/ReID-Survey (``modeling/baseline.py``, ``backbones/resnet_nl.py``,
``layer/non_local.py``, ``layer/gem_pool.py``); cross-modality github.com/mangye16/
Cross-Modal-Re-ID-baseline (``model.py``, ``embed_net``).

Taken from the paper and the official code:

- BoT (:mod:`reid_pipeline.models.bot`): ResNet-50 with last stride 1, BNNeck with a frozen
  shift, bias-free classifier (std 0.001), post-BN test feature.
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

- Non-local inner width ``C // non_local_reduction`` (2, the non-local paper's): the released
  AGW code computes ``reduc_ratio // reduc_ratio`` = 1 channel, which its authors called
  accidental (ReID-Survey issue #7). ``non_local_inter_channels=1`` reproduces the released code
  (about 29k non-local parameters instead of 7.36M on ResNet-50).
- The single-modality ReID-Survey ``ResNetNL`` omits the ReLU after ``bn1`` (its "add missed relu"
  line is commented out); we keep torchvision's stem with the ReLU (as the cross-modality code).
- BNNeck weight starts at 1 (ReID-Survey); the cross-modality code draws it from N(1, 0.01).
- On trunks shallower than ResNet-50 (resnet18 has 2 blocks per stage) the default placement is
  capped at each stage's depth, e.g. ``(0, 2, 2, 0)``; an explicit ``non_local`` larger than a
  stage is an error.
- The test embedding is not L2-normalised here: the evaluation normalises (cosine distance).

Parameter names: ``backbone.*`` (ImageNet trunk, torchvision names), ``non_local.*`` (new
blocks), ``head.pool.p`` (GeM), ``head.neck.bnneck.*``, ``head.neck.classifier.*``. The AGW
recipe's groups (lr 0.1 for BNNeck + classifier, 0.01 elsewhere) match on these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from reid_pipeline.models.bot import BoT
from reid_pipeline.models.layers.non_local import (
    AGW_NON_LOCAL_COUNTS,
    NON_LOCAL_MODES,
    NonLocalStages,
)
from reid_pipeline.models.registry import register_model


class AGW(BoT):
    """BoT + non-local blocks in the trunk + GeM pooling. See :func:`build_agw` for options.

    ``forward_stages(images, modality)`` returns the four stage outputs (with the non-local
    blocks applied) for models built on this baseline.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool | str | Path = False,
        last_stride: int = 1,
        neck_feat: str = "after",
        cross_modality: bool = False,
        non_local: Sequence[int] | None = None,
        non_local_reduction: int = 2,
        non_local_inter_channels: int | None = None,
        non_local_mode: str = "dot_product",
        pool: str = "gem",
        gem_p: float = 3.0,
        gem_learn_p: bool | None = None,
    ) -> None:
        if gem_learn_p is None:
            gem_learn_p = not cross_modality  # as each official code base does
        super().__init__(
            num_classes=num_classes,
            backbone=backbone,
            pretrained=pretrained,
            last_stride=last_stride,
            neck_feat=neck_feat,
            cross_modality=cross_modality,
            pool=pool,
            gem_p=gem_p,
            gem_learn_p=gem_learn_p,
        )
        depths = [len(layer) for layer in self.backbone.layers]
        if non_local is None:
            counts = [min(c, d) for c, d in zip(AGW_NON_LOCAL_COUNTS, depths, strict=True)]
        elif isinstance(non_local, str) or not isinstance(non_local, Sequence):
            raise ValueError(
                "non_local must be a list of 4 non-negative ints (non-local blocks after the "
                f"last blocks of layer1..layer4, AGW: [0, 2, 3, 0]), got {non_local!r}"
            )
        else:
            counts = list(non_local)
        if non_local_mode not in NON_LOCAL_MODES:
            raise ValueError(
                f"non_local_mode must be one of {NON_LOCAL_MODES}, got {non_local_mode!r}"
            )
        self.non_local = NonLocalStages(
            self.backbone.out_channels,
            depths,
            counts,
            reduction=non_local_reduction,
            inter_channels=non_local_inter_channels,
            mode=non_local_mode,
        )

    def forward_stages(self, images: Tensor, modality: Tensor | None = None) -> list[Tensor]:
        """Outputs of layer1..layer4 with the non-local blocks; the last is
        ``(B, feat_dim, H/16, W/16)`` with last stride 1."""
        return self.non_local(self.backbone, images, modality)

    def forward_features(self, images: Tensor, modality: Tensor | None = None) -> Tensor:
        return self.forward_stages(images, modality)[-1]  # (B, C4, h, w)


@register_model("agw")
def build_agw(
    *,
    num_classes: int,
    backbone: str = "resnet50",
    pretrained: bool | str | Path = False,
    last_stride: int = 1,
    neck_feat: str = "after",
    cross_modality: bool = False,
    non_local: Sequence[int] | None = None,
    non_local_reduction: int = 2,
    non_local_inter_channels: int | None = None,
    non_local_mode: str = "dot_product",
    pool: str = "gem",
    gem_p: float = 3.0,
    gem_learn_p: bool | None = None,
) -> AGW:
    """Build the AGW baseline (single-modality, or the cross-modality two-stream variant).

    Args:
        num_classes: training identities (classifier outputs).
        backbone: ``resnet18``, ``resnet34``, ``resnet50`` (the paper's) or ``resnet101``.
        pretrained: ``False``, ``"imagenet"`` or a path to a local weights file for the trunk.
        last_stride: stride of layer4's first block, 1 (AGW) or 2.
        neck_feat: test embedding, ``"after"`` BNNeck (default) or ``"before"``.
        cross_modality: modality-specific stems + shared layer1-4 (visible-infrared); the
            pipeline sets it on visible-infrared datasets; ``forward`` then needs ``modality``.
        non_local: non-local blocks per stage, placed after the stage's last blocks; ``None`` =
            AGW's ``[0, 2, 3, 0]`` (capped at the stage depths of small trunks);
            ``[0, 0, 0, 0]`` disables them.
        non_local_reduction: inner width ``C // non_local_reduction`` of each block (2).
        non_local_inter_channels: fixed inner width instead (overrides the reduction; 1 is what
            the released AGW code builds).
        non_local_mode: ``"dot_product"`` (AGW) or ``"embedded_gaussian"`` (softmax).
        pool: ``"gem"`` (AGW), ``"avg"`` or ``"max"``.
        gem_p: GeM exponent (3).
        gem_learn_p: learn p; ``None`` = as the official code of the variant (learned in the
            single-modality code, fixed in the cross-modality code).
    """
    return AGW(
        num_classes=num_classes,
        backbone=backbone,
        pretrained=pretrained,
        last_stride=last_stride,
        neck_feat=neck_feat,
        cross_modality=cross_modality,
        non_local=non_local,
        non_local_reduction=non_local_reduction,
        non_local_inter_channels=non_local_inter_channels,
        non_local_mode=non_local_mode,
        pool=pool,
        gem_p=gem_p,
        gem_learn_p=gem_learn_p,
    )
