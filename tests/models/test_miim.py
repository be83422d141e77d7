"""MIIM: (r, s) derivation, the gate against a hand-written reference, modality routing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reid_pipeline.models.layers.miim import (
    MIIM,
    ModalitySpecific,
    derive_miim_specs,
)

R50 = (256, 512, 1024, 2048)


@pytest.mark.parametrize(
    ("size", "grid"), [((384, 128), (24, 8)), ((288, 144), (18, 9)), ((256, 128), (16, 8))]
)
def test_derivation_reaches_layer4_grid(size: tuple[int, int], grid: tuple[int, int]) -> None:
    specs = derive_miim_specs(R50, size)
    assert [(s.reduction, s.stride) for s in specs] == [(2, 4), (2, 2), (4, 1), (4, 1)]
    assert [s.grid for s in specs] == [grid] * 4
    assert [s.dim for s in specs] == [128, 256, 256, 512]
    assert specs[0].tokens == grid[0] * grid[1]
    if size == (384, 128):
        assert specs[0].tokens == 192  # the paper's token count


def test_derivation_last_stride_and_token_budget() -> None:
    specs = derive_miim_specs(R50, (384, 128), last_stride=2)
    assert [s.stride for s in specs] == [8, 4, 2, 1]
    assert specs[0].grid == (12, 4)
    budget = derive_miim_specs(R50, (384, 128), max_tokens=64)
    assert [s.stride for s in budget] == [8, 4, 2, 2]
    assert budget[0].grid == (12, 4)
    assert budget[0].tokens <= 64
    odd = derive_miim_specs((64, 128, 256, 512), (250, 121))
    assert odd[0].grid == (16, 8)  # ceil(250 / 16), ceil(121 / 16)


def test_derivation_errors_name_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"reductions\[3\] = 3"):
        derive_miim_specs(R50, (384, 128), reductions=(2, 2, 4, 3))
    with pytest.raises(ValueError, match="input_size"):
        derive_miim_specs(R50, (384,))
    with pytest.raises(ValueError, match="reductions must be 4"):
        derive_miim_specs(R50, (384, 128), reductions=(2, 2))
    with pytest.raises(ValueError, match="max_tokens"):
        derive_miim_specs(R50, (384, 128), max_tokens=0)


def test_parameter_count_of_the_paper_configuration() -> None:
    counts = [
        sum(
            p.numel() for p in MIIM(s.channels, reduction=s.reduction, stride=s.stride).parameters()
        )
        for s in derive_miim_specs(R50, (384, 128))
    ]
    assert counts == [623_360, 919_040, 788_480, 3_149_824]
    # the paper's 7.02M counts the visible and infrared copies of MIIM1 and MIIM2
    assert sum(counts) + counts[0] + counts[1] == 7_023_104


def _reference_gate(m: MIIM, x: torch.Tensor) -> torch.Tensor:
    """The gate written out op by op (train-mode BN, explicit softmax attention, kv pooling)."""
    b, c, h, w = x.shape
    s, heads = m.stride, m.num_heads
    y = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(
        x.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + m.norm_in.eps
    )
    y = F.pad(y, (0, (-w) % s, 0, (-h) % s))
    y = F.conv2d(y, m.compress.weight, m.compress.bias, stride=s)
    gh, gw = y.shape[2:]
    t = F.layer_norm(y.flatten(2).transpose(1, 2), (m.dim,), m.norm.weight, m.norm.bias)
    wq, wk, wv = m.qkv.weight.chunk(3, dim=0)
    q = t @ wq.t()
    grid = t.transpose(1, 2).reshape(b, m.dim, gh, gw)
    pooled = F.avg_pool2d(grid, m.kv_pool, m.kv_pool, ceil_mode=True).flatten(2).transpose(1, 2)
    k, v = pooled @ wk.t(), pooled @ wv.t()
    hd = m.dim // heads
    outs = []
    for i in range(heads):
        sl = slice(i * hd, (i + 1) * hd)
        att = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / hd**0.5, dim=-1)
        outs.append(att @ v[..., sl])
    o = torch.cat(outs, dim=-1) @ m.proj.weight.t() + m.proj.bias
    g = torch.sigmoid(o @ m.restore.weight.t() + m.restore.bias)
    g = g.transpose(1, 2).reshape(b, c, gh, gw)
    g = g.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
    return g[:, :, :h, :w]


@pytest.mark.parametrize(("size", "stride"), [((8, 6), 2), ((7, 5), 2), ((9, 9), 3), ((4, 4), 1)])
def test_gate_matches_reference(size: tuple[int, int], stride: int) -> None:
    torch.manual_seed(0)
    m = MIIM(16, reduction=2, stride=stride, num_heads=2)
    x = torch.randn(3, 16, *size)
    g = m.gate(x)
    assert g.shape == x.shape
    torch.testing.assert_close(g, _reference_gate(m, x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m(x), x * g)
    m.residual_gate = True
    torch.testing.assert_close(m(x), x * (1 + g))


def test_gate_depends_on_far_regions() -> None:
    """Global interaction: changing one corner of the map changes the gate at the other."""
    torch.manual_seed(0)
    m = MIIM(16, reduction=2, stride=2, num_heads=2).eval()
    x = torch.randn(1, 16, 16, 8)
    x2 = x.clone()
    x2[:, :, -2:, -2:] += 5.0
    assert not torch.allclose(m.gate(x)[:, :, :2, :2], m.gate(x2)[:, :, :2, :2])


def _routed() -> ModalitySpecific:
    torch.manual_seed(0)
    return ModalitySpecific(MIIM(16, reduction=2, stride=2, num_heads=2))


@pytest.mark.parametrize("mod", [0, 1])
def test_single_modality_batch_leaves_other_copy_untouched(mod: int) -> None:
    routed = _routed()
    x = torch.randn(4, 16, 8, 4)
    routed(x, torch.full((4,), mod)).sum().backward()
    used, unused = (
        (routed.visible, routed.infrared) if mod == 0 else (routed.infrared, routed.visible)
    )
    assert all(p.grad is None or not p.grad.any() for p in unused.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in used.parameters())


def test_mixed_batch_routes_each_sample() -> None:
    routed = _routed()
    with torch.no_grad():  # make the copies differ
        for p in routed.infrared.parameters():
            p.add_(0.5)
    x = torch.randn(6, 16, 8, 4)
    modality = torch.tensor([0, 1, 1, 0, 1, 0])
    out = routed(x, modality)
    vis = modality == 0
    torch.testing.assert_close(out[vis], routed.visible(x[vis]))
    torch.testing.assert_close(out[~vis], routed.infrared(x[~vis]))
    assert not torch.allclose(routed.visible(x[~vis]), routed.infrared(x[~vis]))
