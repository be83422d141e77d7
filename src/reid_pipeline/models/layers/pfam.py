"""PFAM - Progressive Feature Aggregation Module of FIENet (ICME 2023, visible-infrared ReID).

Known (abstract only): PFAM progressively aggregates mid-level features into the final one.

Ours (docs/models.md): layer2 and layer3 outputs are brought down to the next stage's
grid by a strided 3x3 conv + BN + ReLU and fused progressively,

    a3 = fuse3(layer3, down2(layer2))        # layer 3's grid, C3 channels
    a4 = fuse4(layer4, down3(a3))            # layer 4's grid, ``out_channels``

with ``fusion="concat"`` (concatenate, 1x1 conv + BN + ReLU) or ``"sum"`` (element-wise sum; then
``out_channels`` must be C4). The down-convolution strides are the stage stride ratios (2 from
layer2 to layer3; the trunk's last stride from layer3 to layer4), so odd input sizes line up
exactly (a stride-2 3x3 conv with padding 1 rounds up like the ResNet stage does).

Cost on ResNet-50 with the defaults: 34.1M parameters (mostly the 3x3 1024 -> 2048 down-conv
and the 4096 -> 2048 fusion); ``groups`` on the down-convolutions (e.g. 32: 11.2M) or ``"sum"``
fusion make it lighter.
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

    def __init__(self, channels: int, out_channels: int, *, fusion: str = "concat") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"pfam_fusion must be one of {list(FUSIONS)}, got {fusion!r}")
        if fusion == "sum" and out_channels != channels:
            raise ValueError(
                f"pfam_fusion 'sum' keeps the width ({channels}); pfam_channels = {out_channels} "
                "needs pfam_fusion 'concat'"
            )
        self.fusion = fusion
        self.conv = (
            conv_bn_relu(2 * channels, out_channels, kernel=1) if fusion == "concat" else None
        )

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if self.conv is None:
            return x + y  # (B, C, H, W)
        return self.conv(torch.cat([x, y], dim=1))  # (B, 2C, H, W) -> (B, C_out, H, W)


class PFAM(nn.Module):
    """``forward(x2, x3, x4) -> a4`` on layer 4's grid with ``out_channels`` channels.

    Args:
        channels: widths (C2, C3, C4) of layer2..layer4.
        last_stride: the trunk's last stride (1: layer 4 keeps layer 3's grid).
        fusion: ``"concat"`` (default) or ``"sum"``.
        out_channels: width of ``a4`` (default C4).
        groups: groups of the two 3x3 down-convolutions (default 1, a plain convolution).
    """

    def __init__(
        self,
        channels: Sequence[int],
        *,
        last_stride: int = 1,
        fusion: str = "concat",
        out_channels: int | None = None,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"PFAM needs the widths of layer2..layer4, got {list(channels)}")
        c2, c3, c4 = channels
        self.out_channels = c4 if out_channels is None else out_channels
        if self.out_channels < 1:
            raise ValueError(f"pfam_channels must be a positive int, got {out_channels!r}")
        if groups < 1 or c2 % groups or c3 % groups or c4 % groups:
            raise ValueError(
                f"pfam_groups = {groups} must divide the stage widths {c2}, {c3}, {c4}"
            )
        self.down2 = conv_bn_relu(c2, c3, kernel=3, stride=2, groups=groups)
        self.fuse3 = Fuse(c3, c3, fusion=fusion)
        self.down3 = conv_bn_relu(c3, c4, kernel=3, stride=last_stride, groups=groups)
        self.fuse4 = Fuse(c4, self.out_channels, fusion=fusion)

    def forward(self, x2: Tensor, x3: Tensor, x4: Tensor) -> Tensor:
        a3 = self.fuse3(x3, self.down2(x2))  # (B, C3, H3, W3)
        return self.fuse4(x4, self.down3(a3))  # (B, C_out, H4, W4)
