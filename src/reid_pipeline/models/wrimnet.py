"""WRIM-Net - Wide-Ranging Information Mining Network for visible-infrared person
re-identification (Wu, Meng, Yuan, Chan, Wang, 2024, arXiv:2408.10624).

Known (abstract, figures and a public printout of the real model; docs/models.md):
- a ResNet-50 (last stride 1) with an MIIM (``layers/miim.py``) after every stage: modality-
  *specific* MIIMs after layer1 and layer2 (a visible and an infrared copy, chosen per sample by
  ``modality``), *shared* MIIMs after layer3 and layer4;
- two heads: after layer3 (identity loss, auxiliary) and after layer4 (identity loss + CMKIC);
  each is GAP -> BNNeck -> classifier, plus a projection
  ``Linear(C, C) + BN + ReLU + Linear(C, 128)`` for the contrastive loss (``losses/cmkic.py``).

Ours (each a parameter):
- the stem (``stem``): ``"shared"`` follows the paper ("apart from separate MIIM, all other
  network parameters are shared": one ResNet for both modalities; the ``paper`` recipe);
  ``"specific"`` (the default, kept for the CPU recipe) is the cross-modality AGW baseline's
  ``TwoStreamResNet`` (one stem per modality, shared layer1-4);
- the projection reads the pre-BN pooled feature (``proj_input="pre_bn"``; ``"post_bn"`` reads the
  BNNeck output);
- the test embedding is the post-BN layer-4 feature, concatenated with the post-BN layer-3 feature
  when ``test_concat_layer3`` is set;
- ablation switches: ``miim_stages`` (which stages get an MIIM), ``specific_stages`` (which of
  those are modality-specific), ``aux_head`` (the layer-3 head);
- how (r, s) follow the input size and backbone: see ``derive_miim_specs``.

Training output: ``ReidOutput(logits=[l3, l4], feats=[f3, f4], extras={"proj": p4,
"proj_aux": p3})`` - branch 0 is layer 3, branch 1 layer 4; ``feats`` are the pre-BN pooled
features (a triplet-style loss can use ``branches: [1]`` to read only layer 4). Without the
auxiliary head: ``logits=[l4]``, ``feats=[f4]``, ``extras={"proj": p4}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from reid_pipeline.models.base import ReidModel, ReidOutput
from reid_pipeline.models.layers.backbone import build_backbone
from reid_pipeline.models.layers.bnneck import BNNeck
from reid_pipeline.models.layers.checks import (
    check_bool,
    check_choice,
    check_int_list,
    check_positive_int,
)
from reid_pipeline.models.layers.miim import MIIM, ModalitySpecific, derive_miim_specs
from reid_pipeline.models.layers.routing import ModalitySplit
from reid_pipeline.models.registry import register_model

#: ``shared``: one stem for both modalities (the paper); ``specific``: one per modality (AGW)
STEMS = ("shared", "specific")


class ContrastiveHead(nn.Module):
    """GAP feature -> BNNeck -> classifier, plus a projection for the contrastive loss."""

    def __init__(
        self, channels: int, num_classes: int, *, proj_dim: int = 128, proj_input: str = "pre_bn"
    ) -> None:
        super().__init__()
        self.proj_input = check_choice("proj_input", proj_input, ("pre_bn", "post_bn"))
        check_positive_int("proj_dim", proj_dim)
        self.neck = BNNeck(channels, num_classes)
        self.projection = nn.Sequential(
            nn.Linear(channels, channels),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
            nn.Linear(channels, proj_dim),
        )

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        bn_feat, logits = self.neck(feat)  # (B, C), (B, num_classes)
        if logits is None:
            raise ValueError("ContrastiveHead needs num_classes >= 1 to produce logits")
        proj = self.projection(feat if self.proj_input == "pre_bn" else bn_feat)  # (B, proj_dim)
        return bn_feat, logits, proj


@register_model("wrimnet")
class WRIMNet(ReidModel):
    """Two-stream ResNet with MIIMs after every stage and contrastive heads on layers 3 and 4.

    Args:
        num_classes: training identities (classifier outputs).
        backbone: ``resnet18``, ``resnet34``, ``resnet50`` (the paper's) or ``resnet101``.
        pretrained: ``False``, ``"imagenet"`` or a path to a local weights file for the trunk.
        last_stride: stride of layer4's first block, 1 (the paper's) or 2.
        stem: ``"shared"`` (one stem for both modalities, the paper's statement) or
            ``"specific"`` (a visible and an infrared stem, as the AGW baseline).
        input_size: (height, width) the MIIMs are sized for (the paper's 384 x 128); other
            sizes still run (the token grid follows the input), this fixes (r, s) and the
            ``max_tokens`` budget.
        reductions: channel reduction r of MIIM1..4 (the paper's 2, 2, 4, 4).
        num_heads: attention heads of each MIIM (8); ``C / r`` must be divisible by it.
        kv_pool: keys/values are the tokens average-pooled ``kv_pool`` x ``kv_pool`` (ours: 2).
        max_tokens: optional token budget per MIIM (larger inputs get a larger s); None = off.
        residual_gate: ``x * (1 + gate)`` instead of the paper's ``x * gate``.
        miim_stages: stages (1..4) followed by an MIIM (ablation; default all four).
        specific_stages: stages whose MIIM is modality-specific (default 1 and 2).
        aux_head: the layer-3 head (ID + auxiliary contrastive projection).
        proj_dim: projection width (128).
        proj_input: the projection reads the ``"pre_bn"`` pooled feature or the ``"post_bn"`` one.
        test_concat_layer3: test embedding = [post-BN layer 4, post-BN layer 3].
    """

    cross_modality = True

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool | str | Path = False,
        last_stride: int = 1,
        stem: str = "specific",
        input_size: Sequence[int] = (384, 128),
        reductions: Sequence[int] = (2, 2, 4, 4),
        num_heads: int = 8,
        kv_pool: int = 2,
        max_tokens: int | None = None,
        residual_gate: bool = False,
        miim_stages: Sequence[int] = (1, 2, 3, 4),
        specific_stages: Sequence[int] = (1, 2),
        aux_head: bool = True,
        proj_dim: int = 128,
        proj_input: str = "pre_bn",
        test_concat_layer3: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        stages = (1, 2, 3, 4)
        miim_stages = check_int_list("miim_stages", miim_stages, allowed=stages, non_empty=False)
        specific_stages = check_int_list(
            "specific_stages", specific_stages, allowed=stages, non_empty=False
        )
        check_bool("aux_head", aux_head)
        check_bool("test_concat_layer3", test_concat_layer3)
        if not set(specific_stages) <= set(miim_stages):
            raise ValueError(
                f"specific_stages {list(specific_stages)} must be a subset of miim_stages "
                f"{list(miim_stages)}"
            )
        if test_concat_layer3 and not aux_head:
            raise ValueError("test_concat_layer3 needs aux_head=True (the layer-3 BNNeck)")
        self.num_classes = num_classes
        check_choice("stem", stem, STEMS)
        self.stem = stem
        self.backbone = build_backbone(
            backbone, pretrained=pretrained, last_stride=last_stride, two_stream=stem == "specific"
        )
        channels = self.backbone.out_channels
        self.miim_specs = derive_miim_specs(
            channels,
            tuple(input_size),
            last_stride=last_stride,
            reductions=reductions,
            num_heads=num_heads,
            max_tokens=max_tokens,
        )
        miims: list[nn.Module] = []
        for stage, spec in enumerate(self.miim_specs, start=1):
            if stage not in miim_stages:
                miims.append(nn.Identity())
                continue
            miim = MIIM(
                spec.channels,
                reduction=spec.reduction,
                stride=spec.stride,
                num_heads=num_heads,
                kv_pool=kv_pool,
                residual_gate=residual_gate,
            )
            miims.append(ModalitySpecific(miim) if stage in specific_stages else miim)
        self.miims = nn.ModuleList(miims)
        self.head3 = (
            ContrastiveHead(channels[2], num_classes, proj_dim=proj_dim, proj_input=proj_input)
            if aux_head
            else None
        )
        self.head4 = ContrastiveHead(
            channels[3], num_classes, proj_dim=proj_dim, proj_input=proj_input
        )
        self.test_concat_layer3 = test_concat_layer3
        self.feat_dim = channels[3] + (channels[2] if test_concat_layer3 else 0)

    def _miim(self, stage: int, x: Tensor, modality: ModalitySplit) -> Tensor:
        module = self.miims[stage]
        return module(x, modality) if isinstance(module, ModalitySpecific) else module(x)

    def forward(
        self, images: Tensor, targets: Tensor | None = None, modality: Tensor | None = None
    ) -> Tensor | ReidOutput:
        split = self.check_inputs(images, modality)
        assert split is not None  # check_inputs refuses modality=None for this model
        x = self.backbone.forward_stem(images, split)  # (B, 64, H/4, W/4)
        x = self._miim(0, self.backbone.layer1(x), split)  # (B, C1, H/4, W/4)
        x = self._miim(1, self.backbone.layer2(x), split)  # (B, C2, H/8, W/8)
        x3 = self._miim(2, self.backbone.layer3(x), split)  # (B, C3, H/16, W/16)
        x4 = self._miim(3, self.backbone.layer4(x3), split)  # (B, C4, H/16, W/16)
        f4 = x4.mean(dim=(2, 3))  # (B, C4)
        if not self.training:
            bn4 = self.head4.neck.bnneck(f4)  # (B, C4)
            if self.test_concat_layer3 and self.head3 is not None:
                bn3 = self.head3.neck.bnneck(x3.mean(dim=(2, 3)))  # (B, C3)
                return torch.cat([bn4, bn3], dim=1)  # (B, C4 + C3)
            return bn4
        _, l4, p4 = self.head4(f4)  # (B, C4), (B, classes), (B, proj_dim)
        if self.head3 is None:
            return ReidOutput(logits=[l4], feats=[f4], extras={"proj": p4})
        f3 = x3.mean(dim=(2, 3))  # (B, C3)
        _, l3, p3 = self.head3(f3)  # (B, C3), (B, classes), (B, proj_dim)
        return ReidOutput(logits=[l3, l4], feats=[f3, f4], extras={"proj": p4, "proj_aux": p3})
