"""A seventh architecture for the two-file test: a small CNN trunk, BNNeck and a classifier,
following the model contract (docs/adding_an_architecture.md). Copied into a scratch copy of
the package by tests/kedro/test_new_architecture.py; never part of the installed package."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reid_pipeline.models import ReidModel, ReidOutput, register_model


@register_model("tinynet")
class TinyNet(ReidModel):
    def __init__(self, *, num_classes: int, width: int = 32, pretrained: bool = False) -> None:
        super().__init__()
        self.num_classes, self.feat_dim = num_classes, width
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.bnneck = nn.BatchNorm1d(width)
        self.classifier = nn.Linear(width, num_classes, bias=False)

    def forward(
        self, images: Tensor, targets: Tensor | None = None, modality: Tensor | None = None
    ) -> ReidOutput | Tensor:
        feat = self.backbone(images)
        bn_feat = self.bnneck(feat)
        if not self.training:
            return bn_feat
        return ReidOutput(logits=[self.classifier(bn_feat)], feats=[feat])


__all__ = ["TinyNet", "torch"]
