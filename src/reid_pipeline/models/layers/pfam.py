"""PFAM - Progressive Feature Aggregation Module of FIENet (ICME 2023, visible-infrared ReID).

Known (abstract only): PFAM progressively aggregates mid-level features into the final one.

Ours (docs/models.md), a bottleneck aggregation that stays small next to the trunk: layer2, layer3
and layer4 are each projected to a narrow width ``d`` (``inner_channels``, default C4 / 8: 256 on
ResNet-50) by a 1x1 conv + BN + ReLU, then aggregated progressively at that width,

    a3 = fuse3(p3(layer3), down2(p2(layer2)))    # layer 3's grid, d channels
    a4 = fuse4(p4(layer4), down3(a3))            # layer 4's grid, d channels
    out = layer4 + BN(conv1x1(a4))               # C4 channels, BN scale starts at 0

``down*`` are strided 3x3 conv + BN + ReLU at width ``d`` (stride 2 from layer 2 to layer 3, the
trunk's last stride from layer 3 to layer 4; a stride-2 3x3 conv with padding 1 rounds up as the
ResNet stage does, so odd input sizes line up). ``fusion="concat"``: concatenate + 1x1 conv + BN +
ReLU; ``"sum"``: element-wise sum. The output projection's BN starts with scale 0, so a new PFAM is
the identity on layer 4 and the ImageNet trunk keeps its behaviour at the start of training (as
the non-local blocks of the AGW baseline do).

Cost on ResNet-50 with the defaults: 2,891,264 parameters (the former full-width design, with
3x3 down-convolutions from 1024 to 2048 channels and a 4096 -> 2048 fusion, had 34.1M: more than
the trunk it sits on).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

FUSIONS = ("concat", "sum")


def conv_bn_relu(
    in_ch: int, out_ch: int, *, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False
        ),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class Fuse(nn.Module):
    """Fuse two maps of ``channels`` each: concat + 1x1 conv + BN + ReLU, or their sum."""

    def __init__(self, channels: int, *, fusion: str = "concat") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"pfam_fusion must be one of {list(FUSIONS)}, got {fusion!r}")
        self.fusion = fusion
        self.conv = conv_bn_relu(2 * channels, channels, kernel=1) if fusion == "concat" else None

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if self.conv is None:
            return x + y  # (B, d, H, W)
        return self.conv(torch.cat([x, y], dim=1))  # (B, 2d, H, W) -> (B, d, H, W)


class PFAM(nn.Module):
    """``forward(x2, x3, x4) -> x4 + BN(conv(a4))`` on layer 4's grid, C4 channels.

    Args:
        channels: widths (C2, C3, C4) of layer2..layer4.
        last_stride: the trunk's last stride (1: layer 4 keeps layer 3's grid).
        fusion: ``"concat"`` (default) or ``"sum"``.
        inner_channels: the aggregation width ``d`` (default ``C4 // 8``).
        groups: groups of the two 3x3 down-convolutions (default 1; must divide ``d``).
    """

    def __init__(
        self,
        channels: Sequence[int],
        *,
        last_stride: int = 1,
        fusion: str = "concat",
        inner_channels: int | None = None,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"PFAM needs the widths of layer2..layer4, got {list(channels)}")
        c2, c3, c4 = channels
        d = max(c4 // 8, 1) if inner_channels is None else inner_channels
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ValueError(f"pfam_channels must be a positive int, got {inner_channels!r}")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or d % groups:
            raise ValueError(f"pfam_groups = {groups} must divide the PFAM width {d}")
        self.inner_channels, self.out_channels = d, c4
        self.proj2 = conv_bn_relu(c2, d, kernel=1)
        self.proj3 = conv_bn_relu(c3, d, kernel=1)
        self.proj4 = conv_bn_relu(c4, d, kernel=1)
        self.down2 = conv_bn_relu(d, d, kernel=3, stride=2, groups=groups)
        self.fuse3 = Fuse(d, fusion=fusion)
        self.down3 = conv_bn_relu(d, d, kernel=3, stride=last_stride, groups=groups)
        self.fuse4 = Fuse(d, fusion=fusion)
        self.out = nn.Sequential(nn.Conv2d(d, c4, 1, bias=False), nn.BatchNorm2d(c4))
        nn.init.zeros_(self.out[1].weight)  # starts as the identity on layer 4

    def aggregate(self, x2: Tensor, x3: Tensor, x4: Tensor) -> Tensor:
        """``a4``: the progressive aggregate at width ``d`` on layer 4's grid."""
        a3 = self.fuse3(self.proj3(x3), self.down2(self.proj2(x2)))  # (B, d, H3, W3)
        return self.fuse4(self.proj4(x4), self.down3(a3))  # (B, d, H4, W4)

    def forward(self, x2: Tensor, x3: Tensor, x4: Tensor) -> Tensor:
        return x4 + self.out(self.aggregate(x2, x3, x4))  # (B, C4, H4, W4)
