"""BoT - the "Bag of Tricks" strong ReID baseline.

Reference: H. Luo, Y. Gu, X. Liao, S. Lai, W. Jiang, "Bag of Tricks and A Strong Baseline for
Deep Person Re-identification", CVPR Workshops 2019; and its journal version (IEEE TMM 2019).
Official code: github.com/michuanhaohao/reid-strong-baseline (``modeling/baseline.py``).

Taken from the paper and the official code:

- ResNet trunk (ResNet-50 in the paper) with the last stride set to 1 (``last_stride``).
- Global average pooling -> ``feat`` (2048-d on ResNet-50): the triplet (and center) loss acts on
  it.
- BNNeck: ``BatchNorm1d`` with its shift frozen at 0 (weight 1, bias 0 at start) -> ``bn_feat``
  -> bias-free ``Linear`` classifier initialised with std 0.001 -> ``logits`` for the
  label-smoothed cross-entropy.
- Test embedding: ``bn_feat`` (official ``TEST.NECK_FEAT = 'after'``) or ``feat``
  (``neck_feat="before"``).

Not part of the model (deliberately): the losses (label-smoothed CE, triplet, center loss are
built from parameters by ``reid_pipeline.losses``) and the cosine / L2 normalisation of the test
embedding, which the evaluation applies (``model.eval()`` returns the raw embedding).

Ours: ``cross_modality=True`` swaps the trunk for
:class:`~reid_pipeline.models.layers.backbone.TwoStreamResNet` (one stem per modality, shared
layer1-4), so the same baseline runs on visible-infrared data; the paper is single-modality.
``pool`` may be changed from the paper's ``"avg"`` for ablations.

Parameter names (the optimiser groups match them): ``backbone.*`` (ImageNet trunk),
``head.neck.bnneck.*``, ``head.neck.classifier.*``. What is the paper's and what is ours, sizes
and switches: docs/models.md.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from reid_pipeline.models.base import ReidModel, ReidOutput
from reid_pipeline.models.layers.backbone import build_backbone
from reid_pipeline.models.layers.checks import check_bool, check_choice, check_positive_int
from reid_pipeline.models.layers.head import NECK_FEATS, ReidHead
from reid_pipeline.models.registry import register_model


@register_model("bot")
class BoT(ReidModel):
    """Trunk -> pooling -> BNNeck -> classifier.

    ``train()``: ``forward(images, targets, modality) -> ReidOutput(logits=[logits],
    feats=[feat])``. ``eval()``: ``forward(images, modality=None) -> (B, feat_dim)``.

    Args:
        num_classes: training identities (classifier outputs).
        backbone: ``resnet18``, ``resnet34``, ``resnet50`` (the paper's) or ``resnet101``.
        pretrained: ``False``, ``"imagenet"`` (torchvision weights) or a path to a local weights
            file (safetensors, or a torch state dict read with ``weights_only=True``).
        last_stride: stride of layer4's first block; 1 (the paper's trick) or 2.
        stem_pool: the stem's max-pool, ``"torchvision"`` (padding 1; every recipe) or
            ``"fastreid"`` (padding 0, ``ceil_mode``; weights converted from fast-reid).
        neck_feat: test embedding, ``"after"`` BNNeck (official default) or ``"before"``.
        cross_modality: two-stream trunk (visible / infrared stems) routed by ``modality``;
            a visible-infrared recipe sets it (AGW's cpu_synthetic_vi and paper_vi).
        pool: global pooling, ``"avg"`` (the paper), ``"max"`` or ``"gem"``.
        gem_p, gem_learn_p: GeM exponent and whether it is learned (``pool="gem"`` only).
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
        pool: str = "avg",
        gem_p: float = 3.0,
        gem_learn_p: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.neck_feat = check_choice("neck_feat", neck_feat, NECK_FEATS)
        self.cross_modality = check_bool("cross_modality", cross_modality)
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

    def forward(
        self, images: Tensor, targets: Tensor | None = None, modality: Tensor | None = None
    ) -> ReidOutput | Tensor:
        """``targets`` (the pids) is accepted for the common contract and unused: BoT's
        branches do not depend on the labels. ``modality`` routes the stems of the
        cross-modality variant and is ignored by the single-modality one."""
        split = self.check_inputs(images, modality)
        fmap = self.backbone(images, split)  # (B, C, H/16, W/16) with last stride 1
        return self.head.reid_output(fmap, training=self.training, neck_feat=self.neck_feat)
