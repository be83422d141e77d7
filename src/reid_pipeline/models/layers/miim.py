"""MIIM - Multi-dimension Interactive Information Mining (WRIM-Net, Wu et al., 2024,
arXiv:2408.10624), and the per-sample modality router WRIM-Net uses for its shallow MIIMs.

Known (paper figures and a public printout of the real model):
``MIIM(C, r, s)`` = ``BatchNorm2d(C, affine=False)`` -> Spatial-Channel Compress
``Conv2d(C -> C/r, kernel = stride = s)`` -> Global Region Interaction (``LayerNorm`` -> ``qkv``
``Linear(C/r -> 3C/r, bias=False)`` -> 8-head attention -> ``proj`` ``Linear``) -> Spatial-Channel
Restore ``Linear(C/r -> C)`` -> sigmoid -> nearest upsample x s -> multiplied into the input;
(r, s) = (2, 4), (2, 2), (4, 1), (4, 1) for MIIM1..4 on ResNet-50 at 384x128 (24 x 8 = 192 tokens
each). The paper says the compressed tokens are the queries and pooled tokens the keys/values.

Ours (where the public record stops), each a parameter:
- keys/values are the query tokens average-pooled ``kv_pool`` x ``kv_pool`` (default 2: regions of
  2 x 2 tokens; 1 = plain self-attention); odd grids pool their last partial window.
- the (r, s) rule for any backbone and input size (``derive_miim_specs``): ``s`` of a stage is
  layer 4's stride divided by that stage's stride (4, 2, 1, 1 with last stride 1; 8, 4, 2, 1 with
  last stride 2), so every stage is compressed to layer 4's grid ``ceil(H/16) x ceil(W/16)``; a
  stage whose size is not a multiple of ``s`` is zero-padded bottom/right before the compress conv
  and its gate cropped back after the upsample, so any input size works. ``max_tokens`` (off by
  default) multiplies every ``s`` by the smallest power of two that keeps the grid within budget.
  ``r`` is given per stage (``reductions``, default the paper's 2, 2, 4, 4).
- ``residual_gate``: ``x * (1 + gate)`` instead of the paper's ``x * gate`` (default off).

Parameter count (checked in tests): with ResNet-50 at 384x128 one copy of each MIIM holds
5,480,704 parameters (623,360 + 919,040 + 788,480 + 3,149,824); counting both the visible and the
infrared copies of MIIM1 and MIIM2, as WRIM-Net builds them, gives 7,023,104 = the paper's 7.02M.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid_pipeline.models.layers.routing import ModalitySplit

#: ResNet stage strides (layer1..layer3); layer 4's is 16 x last_stride.
_STAGE_STRIDES = (4, 8, 16)


@dataclass(frozen=True)
class MIIMSpec:
    """One MIIM's configuration: ``channels`` C, channel reduction r, spatial stride s and the
    token grid (h, w) it works on for the input size it was derived for."""

    channels: int
    reduction: int
    stride: int
    grid: tuple[int, int]

    @property
    def dim(self) -> int:
        return self.channels // self.reduction

    @property
    def tokens(self) -> int:
        return self.grid[0] * self.grid[1]


def stage_size(input_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Spatial size of a ResNet stage of total ``stride`` (every stride-2 op rounds up)."""
    return (math.ceil(input_size[0] / stride), math.ceil(input_size[1] / stride))


def derive_miim_specs(
    channels: Sequence[int],
    input_size: Sequence[int],
    *,
    last_stride: int = 1,
    reductions: Sequence[int] = (2, 2, 4, 4),
    num_heads: int = 8,
    max_tokens: int | None = None,
) -> list[MIIMSpec]:
    """(r, s) and token grid of the four MIIMs of a ResNet with stage widths ``channels``.

    Rule (ours, reproduces the paper's (2, 4), (2, 2), (4, 1), (4, 1) at 384x128): ``s_i`` =
    stride(layer4) / stride(layer_i), times the smallest power of two f that keeps
    ``ceil(H / (16 f)) * ceil(W / (16 f)) <= max_tokens`` when a budget is given; every stage then
    works on the same grid ``ceil(H / (stride4 f)) x ceil(W / (stride4 f))``.
    """
    if len(channels) != 4:
        raise ValueError(f"channels must list the 4 ResNet stage widths, got {list(channels)}")
    if len(input_size) != 2 or not all(isinstance(v, int) and v > 0 for v in input_size):
        raise ValueError(f"input_size must be (height, width) positive ints, got {input_size!r}")
    if len(reductions) != 4 or not all(isinstance(r, int) and r >= 1 for r in reductions):
        raise ValueError(f"reductions must be 4 positive ints (one per stage), got {reductions!r}")
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int or None, got {max_tokens!r}")
    size = (int(input_size[0]), int(input_size[1]))
    strides = (*_STAGE_STRIDES, _STAGE_STRIDES[-1] * last_stride)
    factor = 1
    grid = stage_size(size, strides[3])
    while max_tokens is not None and grid[0] * grid[1] > max_tokens and grid != (1, 1):
        factor *= 2
        grid = stage_size(size, strides[3] * factor)
    specs = []
    for i, (c, r, stride) in enumerate(zip(channels, reductions, strides, strict=True)):
        if c % r or (c // r) % num_heads:
            raise ValueError(
                f"reductions[{i}] = {r}: stage {i + 1} has {c} channels; C / r must be an int "
                f"divisible by num_heads = {num_heads}"
            )
        specs.append(MIIMSpec(c, r, strides[3] // stride * factor, grid))
    return specs


class MIIM(nn.Module):
    """Re-weights a stage's map ``x`` (B, C, H, W) by a gate mined on a compressed token grid."""

    def __init__(
        self,
        channels: int,
        *,
        reduction: int,
        stride: int,
        num_heads: int = 8,
        kv_pool: int = 2,
        residual_gate: bool = False,
    ) -> None:
        super().__init__()
        dim = channels // reduction
        if channels % reduction or dim % num_heads:
            raise ValueError(
                f"MIIM: channels / reduction = {channels} / {reduction} must be an int divisible "
                f"by num_heads = {num_heads}"
            )
        if stride < 1 or kv_pool < 1:
            raise ValueError(f"MIIM: stride and kv_pool must be >= 1, got {stride}, {kv_pool}")
        self.channels, self.dim, self.stride = channels, dim, stride
        self.num_heads, self.kv_pool, self.residual_gate = num_heads, kv_pool, residual_gate
        self.norm_in = nn.BatchNorm2d(channels, affine=False)
        self.compress = nn.Conv2d(channels, dim, kernel_size=stride, stride=stride)
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.restore = nn.Linear(dim, channels)

    def _pool_tokens(self, t: Tensor, grid: tuple[int, int]) -> Tensor:
        b, _, d = t.shape
        h, w = grid
        kernel = (min(self.kv_pool, h), min(self.kv_pool, w))
        t = t.transpose(1, 2).reshape(b, d, h, w)  # (B, D, h, w)
        t = F.avg_pool2d(t, kernel, kernel, ceil_mode=True)  # (B, D, h', w')
        return t.flatten(2).transpose(1, 2)  # (B, M, D)

    def gate(self, x: Tensor) -> Tensor:
        """The sigmoid gate, upsampled to ``x``'s size: (B, C, H, W) in (0, 1)."""
        b, _, height, width = x.shape
        s = self.stride
        y = self.norm_in(x)  # (B, C, H, W)
        pad_h, pad_w = (-height) % s, (-width) % s
        if pad_h or pad_w:
            y = F.pad(y, (0, pad_w, 0, pad_h))  # (B, C, H', W'), multiples of s
        y = self.compress(y)  # (B, D, h, w)
        grid = (y.shape[2], y.shape[3])
        tokens = self.norm(y.flatten(2).transpose(1, 2))  # (B, N, D)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)  # 3 x (B, N, D)
        if self.kv_pool > 1:
            k, v = self._pool_tokens(k, grid), self._pool_tokens(v, grid)  # (B, M, D)
        hd = self.dim // self.num_heads
        q = q.reshape(b, -1, self.num_heads, hd).transpose(1, 2)  # (B, heads, N, hd)
        k = k.reshape(b, -1, self.num_heads, hd).transpose(1, 2)  # (B, heads, M, hd)
        v = v.reshape(b, -1, self.num_heads, hd).transpose(1, 2)  # (B, heads, M, hd)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, hd)
        out = self.proj(out.transpose(1, 2).reshape(b, -1, self.dim))  # (B, N, D)
        g = torch.sigmoid(self.restore(out))  # (B, N, C)
        g = g.transpose(1, 2).reshape(b, self.channels, *grid)  # (B, C, h, w)
        if s > 1:
            g = F.interpolate(g, scale_factor=s, mode="nearest")  # (B, C, h*s, w*s)
        return g[:, :, :height, :width]  # (B, C, H, W)

    def forward(self, x: Tensor) -> Tensor:
        g = self.gate(x)  # (B, C, H, W)
        return x * (1.0 + g) if self.residual_gate else x * g  # (B, C, H, W)


class ModalitySpecific(nn.Module):
    """A visible and an infrared copy of a module, applied per sample by ``modality``
    (0 visible, 1 infrared; see ``layers/routing.py``). A batch of one modality never touches
    the other copy, so that copy's gradients stay None."""

    def __init__(self, visible: nn.Module, infrared: nn.Module | None = None) -> None:
        super().__init__()
        self.visible = visible
        self.infrared = infrared if infrared is not None else copy.deepcopy(visible)

    def forward(self, x: Tensor, modality: Tensor | ModalitySplit) -> Tensor:
        """``modality``: the batch's :class:`ModalitySplit` (no host sync) or its tensor."""
        split = ModalitySplit.coerce(modality, "ModalitySpecific")
        return split.route(x, self.visible, self.infrared)  # (B, ...)
