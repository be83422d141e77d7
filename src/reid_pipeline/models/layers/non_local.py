"""Non-local block (Wang et al., "Non-local Neural Networks", CVPR 2018) as AGW uses it.

Paper: ``z = W_z(y) + x`` with ``y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j)``; ``theta``, ``phi``,
``g`` are 1x1 convolutions to ``C / 2`` channels, ``W_z`` is a 1x1 convolution back to ``C``
followed by BatchNorm whose scale *and* shift start at zero, so a freshly inserted block is the
identity and a pretrained trunk keeps its behaviour at the start of training.

Two pairwise functions (``mode``):

- ``"dot_product"`` (AGW's choice; both official AGW repositories): ``f = theta_i . phi_j`` and
  ``C(x) = N`` (the number of positions), no softmax.
- ``"embedded_gaussian"`` (the paper's default): ``f = exp(theta_i . phi_j)`` normalised by a
  softmax over ``j``.

From the official AGW code (ReID-Survey ``modeling/layer/non_local.py`` and the cross-modality
baseline's ``model.py``): the dot-product variant, biased 1x1 convolutions, zero-initialised BN on
``W``, and the placement of the blocks *after the last residual blocks* of a stage (``NL_k_idx =
sorted(depth - 1 - i for i < count)``): 2 blocks after blocks 2, 3 of layer2 and 3 after blocks
3, 4, 5 of layer3 on ResNet-50.

Inner width: the paper (and one stored version of the cross-modality ``model.py``) uses
``in_channels // 2``; the released ReID-Survey code computes ``reduc_ratio // reduc_ratio`` = 1
channel, which its authors called accidental (ReID-Survey issue #7: ``in_channels //
reduc_ratio`` is the intended setting). The default here is the paper's ``in_channels //
reduction``; ``inter_channels=1`` reproduces the released code, and so does the models' switch
``non_local_width="released"`` (``NON_LOCAL_WIDTHS``; the ``paper`` recipes of AGW use it, since
the published AGW numbers come from that code). ``"corrected"`` is the ``in_channels // reduction``
block.

Ours: the dot-product variant has no softmax, so ``(theta phi) g = theta (phi g)``; the block picks
the cheaper multiplication order per input (``N^2 C'`` vs ``N C'^2``), which gives the same
result (up to float rounding) with far less memory on large maps. The embedded-Gaussian variant
runs through ``scaled_dot_product_attention`` with scale 1 (fused kernels where available).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from reid_pipeline.models.layers.checks import check_choice
from reid_pipeline.models.layers.routing import ModalitySplit

NON_LOCAL_MODES = ("dot_product", "embedded_gaussian")
#: ``corrected``: inner width ``C // reduction``; ``released``: 1 channel, as the released AGW code
NON_LOCAL_WIDTHS = ("corrected", "released")

#: AGW's placement on ResNet-50: blocks after the last 0 / 2 / 3 / 0 residual blocks of layer1..4.
AGW_NON_LOCAL_COUNTS = (0, 2, 3, 0)


class NonLocalBlock(nn.Module):
    """Residual non-local block ``x + BN(W(y))``; shape-preserving ``(B, C, H, W)``.

    Args:
        in_channels: ``C`` of the input map.
        reduction: inner width is ``in_channels // reduction`` (the paper uses 2).
        inter_channels: fixed inner width instead (overrides ``reduction``; 1 reproduces the
            released AGW code).
        mode: ``"dot_product"`` (AGW) or ``"embedded_gaussian"`` (softmax, the paper's default).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        reduction: int = 2,
        inter_channels: int | None = None,
        mode: str = "dot_product",
    ) -> None:
        super().__init__()
        if mode not in NON_LOCAL_MODES:
            raise ValueError(f"non-local mode must be one of {NON_LOCAL_MODES}, got {mode!r}")
        if inter_channels is None:
            if not isinstance(reduction, int) or reduction < 1 or in_channels // reduction < 1:
                raise ValueError(
                    f"non-local reduction must be an int in [1, {in_channels}] for "
                    f"{in_channels} channels, got {reduction!r}"
                )
            inter_channels = in_channels // reduction
        elif not isinstance(inter_channels, int) or not 1 <= inter_channels <= in_channels:
            raise ValueError(
                f"non-local inter_channels must be an int in [1, {in_channels}], got "
                f"{inter_channels!r}"
            )
        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.mode = mode
        self.theta = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.g = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.out_proj = nn.Sequential(
            nn.Conv2d(self.inter_channels, in_channels, kernel_size=1),
            nn.BatchNorm2d(in_channels),
        )
        nn.init.zeros_(self.out_proj[1].weight)  # identity at initialisation
        nn.init.zeros_(self.out_proj[1].bias)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        n = h * w
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, C')
        phi = self.phi(x).flatten(2)  # (B, C', N)
        g = self.g(x).flatten(2).transpose(1, 2)  # (B, N, C')
        if self.mode == "embedded_gaussian":  # softmax_j(theta_i . phi_j) g_j, fused kernel
            y = F.scaled_dot_product_attention(theta, phi.transpose(1, 2), g, scale=1.0)
        elif n <= self.inter_channels:
            y = (theta @ phi) @ g / n  # (B, N, N) @ (B, N, C') -> (B, N, C')
        else:
            y = theta @ (phi @ g) / n  # (B, N, C') @ (B, C', C') -> (B, N, C')
        y = y.transpose(1, 2).reshape(b, self.inter_channels, h, w)  # (B, C', H, W)
        return x + self.out_proj(y)  # (B, C, H, W)


def non_local_positions(
    counts: Sequence[int], depths: Sequence[int], *, name: str = "non_local"
) -> list[list[int]]:
    """Block indices after which the non-local blocks of each stage go (AGW's rule: the last
    ``counts[s]`` residual blocks of stage ``s``). ``depths[s]`` is the number of blocks."""
    if len(counts) != len(depths):
        raise ValueError(
            f"{name} must give one count per ResNet stage ({len(depths)} values), got "
            f"{list(counts)}"
        )
    positions = []
    for stage, (count, depth) in enumerate(zip(counts, depths, strict=True)):
        if not isinstance(count, int) or count < 0 or count > depth:
            raise ValueError(
                f"{name}[{stage}] (layer{stage + 1}) must be an int in [0, {depth}] (the stage "
                f"has {depth} residual blocks), got {count!r}"
            )
        positions.append(list(range(depth - count, depth)))
    return positions


class NonLocalStages(nn.Module):
    """Non-local blocks interleaved with the residual blocks of a ResNet's layer1..layer4.

    The blocks live here, not in the trunk, so the trunk keeps torchvision's parameter names
    (``backbone.layer2.3.conv1.weight``) and its ImageNet learning-rate group; the new blocks are
    named ``non_local.layer<k>.<i>.*``. ``forward(backbone, x, modality)`` runs the whole trunk.

    Args:
        channels: output width of each stage (``backbone.out_channels``).
        depths: number of residual blocks of each stage.
        counts: non-local blocks per stage, placed after the stage's last ``counts[s]`` blocks.
        reduction, inter_channels, mode: see :class:`NonLocalBlock`.
    """

    def __init__(
        self,
        channels: Sequence[int],
        depths: Sequence[int],
        counts: Sequence[int] = AGW_NON_LOCAL_COUNTS,
        *,
        reduction: int = 2,
        inter_channels: int | None = None,
        mode: str = "dot_product",
    ) -> None:
        super().__init__()
        if len(channels) != len(depths):
            raise ValueError(f"got {len(channels)} stage widths but {len(depths)} stage depths")
        self.positions = non_local_positions(counts, depths)
        self.counts = tuple(int(c) for c in counts)
        self.blocks = nn.ModuleDict(
            {
                f"layer{s + 1}": nn.ModuleList(
                    NonLocalBlock(
                        channels[s], reduction=reduction, inter_channels=inter_channels, mode=mode
                    )
                    for _ in self.positions[s]
                )
                for s in range(len(channels))
                if self.positions[s]
            }
        )

    @classmethod
    def for_backbone(
        cls,
        backbone: nn.Module,
        counts: Sequence[int] | None = None,
        *,
        reduction: int = 2,
        inter_channels: int | None = None,
        mode: str = "dot_product",
        width: str = "corrected",
    ) -> NonLocalStages:
        """Blocks for a :class:`~reid_pipeline.models.layers.backbone.ResNetBackbone`; ``counts``
        ``None`` is AGW's placement, capped at each stage's depth on shallow trunks (resnet18:
        ``(0, 2, 2, 0)``). ``width="released"``: one inner channel per block, the released AGW
        code's ``reduc_ratio // reduc_ratio``. The option names in the messages are the models'
        (``non_local*``)."""
        check_choice("non_local_width", width, NON_LOCAL_WIDTHS)
        if width == "released":
            if inter_channels not in (None, 1):
                raise ValueError(
                    f"non_local_width='released' builds 1 inner channel (the released AGW code), "
                    f"but non_local_inter_channels={inter_channels!r}; drop one of the two"
                )
            inter_channels = 1
        depths = [len(layer) for layer in backbone.layers]
        if counts is None:
            counts = [min(c, d) for c, d in zip(AGW_NON_LOCAL_COUNTS, depths, strict=True)]
        elif isinstance(counts, str) or not isinstance(counts, Sequence):
            raise ValueError(
                "non_local must be a list of 4 non-negative ints (non-local blocks after the "
                f"last blocks of layer1..layer4, AGW: [0, 2, 3, 0]), got {counts!r}"
            )
        check_choice("non_local_mode", mode, NON_LOCAL_MODES)
        return cls(
            backbone.out_channels,
            depths,
            list(counts),
            reduction=reduction,
            inter_channels=inter_channels,
            mode=mode,
        )

    def forward_stage(self, stage: int, layer: nn.Sequential, x: Tensor) -> Tensor:
        """Run residual stage ``stage`` (0-based) with its non-local blocks."""
        blocks = self.blocks[f"layer{stage + 1}"] if self.positions[stage] else []
        nl_iter = iter(zip(self.positions[stage], blocks, strict=True))
        nxt = next(nl_iter, None)
        for i, res_block in enumerate(layer):
            x = res_block(x)  # (B, C_s, H_s, W_s)
            if nxt is not None and nxt[0] == i:
                x = nxt[1](x)  # (B, C_s, H_s, W_s)
                nxt = next(nl_iter, None)
        return x

    def forward(
        self, backbone: nn.Module, x: Tensor, modality: Tensor | ModalitySplit | None = None
    ) -> list[Tensor]:
        """Trunk forward with the non-local blocks; returns the four stage outputs
        (layer1..layer4), the last being ``(B, C4, H/16, W/16)`` with last stride 1."""
        x = backbone.forward_stem(x, modality)  # (B, 64, H/4, W/4)
        outs = []
        for stage, layer in enumerate(backbone.layers):
            x = self.forward_stage(stage, layer, x)
            outs.append(x)
        return outs
