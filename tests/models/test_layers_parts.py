"""Tests of the part-pooling, saliency-erasing, Grad-CAM and A-Hard-Mix layers."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reid_pipeline.models.layers.erasing import argmax_window_mask, resize_mask, window_extent
from reid_pipeline.models.layers.gradcam import grad_cam, target_score
from reid_pipeline.models.layers.hard_mix import (
    AttentiveHardMix,
    block_grid,
    block_scores,
    hard_mix,
    pick_partners,
    topk_block_mask,
)
from reid_pipeline.models.layers.parts import horizontal_parts, row_ranges

# ----------------------------------------------------------------------------- parts


@pytest.mark.parametrize(
    ("height", "n", "expected"),
    [
        (24, 2, [(0, 12), (12, 24)]),
        (24, 3, [(0, 8), (8, 16), (16, 24)]),
        (24, 4, [(0, 6), (6, 12), (12, 18), (18, 24)]),
        (24, 5, [(0, 5), (4, 10), (9, 15), (14, 20), (19, 24)]),
        (24, 6, [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 24)]),
        (16, 2, [(0, 8), (8, 16)]),
        (16, 3, [(0, 6), (5, 11), (10, 16)]),
        (16, 4, [(0, 4), (4, 8), (8, 12), (12, 16)]),
        (16, 5, [(0, 4), (3, 7), (6, 10), (9, 13), (12, 16)]),
        (16, 6, [(0, 3), (2, 6), (5, 8), (8, 11), (10, 14), (13, 16)]),
        (7, 3, [(0, 3), (2, 5), (4, 7)]),
    ],
)
def test_row_ranges_exact(height: int, n: int, expected: list[tuple[int, int]]) -> None:
    assert row_ranges(height, n, "adaptive") == expected


@pytest.mark.parametrize(
    ("height", "n", "expected"),
    [
        (24, 4, [(0, 6), (6, 12), (12, 18), (18, 24)]),
        (24, 5, [(0, 4), (4, 9), (9, 14), (14, 19), (19, 24)]),
        (6, 4, [(0, 1), (1, 3), (3, 4), (4, 6)]),
        (6, 5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6)]),
        (16, 3, [(0, 5), (5, 10), (10, 16)]),
        (16, 6, [(0, 2), (2, 5), (5, 8), (8, 10), (10, 13), (13, 16)]),
    ],
)
def test_row_ranges_partition_exact(height: int, n: int, expected: list[tuple[int, int]]) -> None:
    assert row_ranges(height, n) == expected  # partition is the default


@pytest.mark.parametrize("height", [6, 7, 8, 12, 16, 18, 24, 32])
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_partition_stripes_cover_every_row_exactly_once(height: int, n: int) -> None:
    if n > height:
        return
    ranges = row_ranges(height, n, "partition")
    owner = [i for i, (a, b) in enumerate(ranges) for _ in range(a, b)]
    assert owner == sorted(owner)  # stripes in order, top to bottom
    assert len(owner) == height  # every row once: no overlap, none dropped
    sizes = [b - a for a, b in ranges]
    assert set(sizes) <= {height // n, -(-height // n)}  # "equal" up to one row
    if height % n == 0:  # dividing heights: the same stripes as adaptive pooling
        assert ranges == row_ranges(height, n, "adaptive")


@pytest.mark.parametrize("height", [6, 16, 24])
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_horizontal_parts_partition_pools_exactly_its_rows(height: int, n: int, pool: str) -> None:
    torch.manual_seed(n * 10 + height)
    x = torch.randn(2, 3, height, 4)
    parts = horizontal_parts(x, n, pool=pool)
    for i, (start, end) in enumerate(row_ranges(height, n)):
        stripe = x[:, :, start:end, :].flatten(2)
        expected = stripe.amax(dim=2) if pool == "max" else stripe.mean(dim=2)
        torch.testing.assert_close(parts[:, :, i], expected)
    if height % n == 0:  # bit-identical to adaptive pooling where the rules agree
        assert torch.equal(parts, horizontal_parts(x, n, pool=pool, split="adaptive"))


@pytest.mark.parametrize("height", [24, 16, 7, 8])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_horizontal_parts_pool_exactly_their_rows(height: int, n: int, pool: str) -> None:
    torch.manual_seed(n * 100 + height)
    x = torch.randn(2, 3, height, 5)
    parts = horizontal_parts(x, n, pool=pool, split="adaptive")
    assert parts.shape == (2, 3, n)
    for i, (start, end) in enumerate(row_ranges(height, n, "adaptive")):
        stripe = x[:, :, start:end, :].flatten(2)
        expected = stripe.amax(dim=2) if pool == "max" else stripe.mean(dim=2)
        torch.testing.assert_close(parts[:, :, i], expected)
    # every row belongs to some stripe; neighbours overlap by at most one row
    ranges = row_ranges(height, n, "adaptive")
    assert ranges[0][0] == 0
    assert ranges[-1][1] == height
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end - start in (0, 1)


def test_horizontal_parts_errors() -> None:
    x = torch.randn(1, 2, 6, 3)
    with pytest.raises(ValueError, match="height 6 into 7 parts"):
        horizontal_parts(x, 7)
    with pytest.raises(ValueError, match="pool must be one of"):
        horizontal_parts(x, 2, pool="median")
    with pytest.raises(ValueError, match="positive int"):
        horizontal_parts(x, 0)


# ----------------------------------------------------------------------------- erasing


def test_window_extent() -> None:
    assert window_extent(24, 1 / 3) == 8
    assert window_extent(16, 1 / 3) == 5
    assert window_extent(8, 1.0) == 8
    assert window_extent(3, 0.01) == 1
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        window_extent(8, 0.0)


def test_argmax_window_mask_zeroes_exactly_the_window() -> None:
    h, w = 16, 8
    sal = torch.zeros(4, 1, h, w)
    peaks = [(10, 3), (0, 0), (15, 7), (7, 5)]
    for b, (r, c) in enumerate(peaks):
        sal[b, 0, r, c] = 5.0
    keep = argmax_window_mask(sal, rows=5)  # full width
    assert keep.shape == (4, 1, h, w)
    # centred start = r - 5 // 2, shifted inside the map
    expected_rows = [range(8, 13), range(0, 5), range(11, 16), range(5, 10)]
    for b, rows in enumerate(expected_rows):
        expected = torch.ones(h, w)
        expected[list(rows), :] = 0
        assert torch.equal(keep[b, 0], expected), b
        assert keep[b, 0, peaks[b][0], peaks[b][1]] == 0  # the arg-max cell is always erased

    keep = argmax_window_mask(sal[:, 0], rows=3, cols=3)
    expected = torch.ones(h, w)
    expected[9:12, 2:5] = 0
    assert torch.equal(keep[0, 0], expected)
    expected = torch.ones(h, w)
    expected[13:16, 5:8] = 0  # shifted back inside the bottom-right corner
    assert torch.equal(keep[2, 0], expected)
    assert int((keep == 0).sum()) == 4 * 9


def test_argmax_window_mask_errors() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        argmax_window_mask(torch.zeros(1, 4, 2), rows=5)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        argmax_window_mask(torch.zeros(4, 2), rows=1)


def test_resize_mask_nearest_is_blockwise() -> None:
    keep = argmax_window_mask(torch.randn(2, 6, 4), rows=2)
    big = resize_mask(keep, (12, 8))
    expected = keep.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.equal(big, expected)
    assert resize_mask(keep, (6, 4)) is keep


# ----------------------------------------------------------------------------- Grad-CAM


def test_grad_cam_equals_closed_form_on_linear_head() -> None:
    torch.manual_seed(0)
    b, c, h, w, n_cls = 3, 5, 4, 3, 7
    head = nn.Linear(c, n_cls)
    x = torch.randn(b, c, h, w, requires_grad=True)
    targets = torch.tensor([1, 6, 1])
    logits = head(x.mean(dim=(2, 3)))
    cam = grad_cam(target_score(logits, targets), x)
    # d logit_y / d x[b, c, h, w] = W[y, c] / (H W): the channel weights are W[y] / (H W)
    weights = head.weight[targets] / (h * w)  # (B, C)
    expected = torch.einsum("bc,bchw->bhw", weights, x).clamp(min=0)
    torch.testing.assert_close(cam, expected.detach())
    assert not cam.requires_grad
    assert all(p.grad is None for p in head.parameters())
    assert x.grad is None
    raw = grad_cam(target_score(logits, targets), x, relu=False)
    torch.testing.assert_close(raw, torch.einsum("bc,bchw->bhw", weights, x).detach())
    assert bool((raw < 0).any())  # the relu really does something here
    logits.sum().backward()  # the graph was retained for the real loss
    assert head.weight.grad is not None


def test_grad_cam_and_target_score_errors() -> None:
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(RuntimeError, match="does not require grad"):
        grad_cam(x.sum(), x)
    with pytest.raises(ValueError, match="scalar"):
        grad_cam(x.sum(dim=1), x.requires_grad_())
    with pytest.raises(ValueError, match="relabelled"):
        target_score(torch.randn(2, 5), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        target_score(torch.randn(2, 5), torch.tensor([0, 1, 2]))


# ----------------------------------------------------------------------------- A-Hard-Mix


def test_block_scores_sum_each_block_including_partial_ones() -> None:
    torch.manual_seed(1)
    cam = torch.rand(2, 16, 8)
    scores = block_scores(cam, (3, 2))
    assert block_grid(16, 8, (3, 2)) == (6, 4)
    assert scores.shape == (2, 6, 4)
    for i in range(6):
        for j in range(4):
            expected = cam[:, 3 * i : 3 * i + 3, 2 * j : 2 * j + 2].sum(dim=(1, 2))
            torch.testing.assert_close(scores[:, i, j], expected)
    torch.testing.assert_close(scores[:, 5, 0], cam[:, 15, 0:2].sum(dim=1))  # 1-row last block


def test_topk_block_mask_marks_the_cams_top_blocks() -> None:
    cam = torch.full((2, 24, 8), 0.1)
    hot = [[(0, 0), (4, 3), (7, 1)], [(2, 2), (3, 2), (6, 0)]]  # (block row, block col)
    for b, blocks in enumerate(hot):
        for rank, (i, j) in enumerate(blocks):
            cam[b, 3 * i : 3 * i + 3, 2 * j : 2 * j + 2] = 5.0 - rank
    keep = topk_block_mask(cam, block_size=(3, 2), top_k=3)
    assert keep.shape == (2, 1, 24, 8)
    for b, blocks in enumerate(hot):
        expected = torch.ones(24, 8)
        for i, j in blocks:
            expected[3 * i : 3 * i + 3, 2 * j : 2 * j + 2] = 0
        assert torch.equal(keep[b, 0], expected)
    with pytest.raises(ValueError, match="top_k=7 exceeds the 6 blocks"):
        topk_block_mask(torch.rand(1, 8, 4), block_size=(3, 2), top_k=7)
    with pytest.raises(ValueError, match="block_size"):
        topk_block_mask(cam, block_size=(3,), top_k=1)


def test_pick_partners_other_identity_uniform_and_reproducible() -> None:
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    torch.manual_seed(3)
    first = pick_partners(pids)
    torch.manual_seed(3)
    assert torch.equal(pick_partners(pids), first)
    seen: set[tuple[int, int]] = set()
    for _ in range(300):
        partners = pick_partners(pids)
        assert bool((pids[partners] != pids).all())
        seen.update(zip(range(8), partners.tolist(), strict=True))
    eligible = {(i, j) for i in range(8) for j in range(8) if pids[i] != pids[j]}
    assert seen == eligible  # every eligible partner is drawn, none other
    gen = torch.Generator().manual_seed(9)
    assert bool((pids[pick_partners(pids, generator=gen)] != pids).all())
    with pytest.raises(ValueError, match="at least two identities"):
        pick_partners(torch.tensor([4, 4, 4]))


def test_attentive_hard_mix_replaces_top_blocks_with_other_identity() -> None:
    torch.manual_seed(4)
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    z = torch.randn(6, 5, 8, 4)
    cam = torch.rand(6, 8, 4)
    mix = AttentiveHardMix(block_size=(3, 2), top_k=2)
    z2, keep, partners = mix(z, cam, pids)
    assert bool((pids[partners] != pids).all())
    scores = block_scores(cam, (3, 2)).flatten(1)  # (B, 6 blocks: 3 rows x 2 cols)
    for b in range(6):
        top = set(scores[b].topk(2).indices.tolist())
        for blk in range(6):
            i, j = divmod(blk, 2)
            rows, cols = slice(3 * i, min(3 * i + 3, 8)), slice(2 * j, 2 * j + 2)
            source = z[partners[b]] if blk in top else z[b]
            assert torch.equal(z2[b, :, rows, cols], source[:, rows, cols]), (b, blk)
            assert bool((keep[b, 0, rows, cols] == (0 if blk in top else 1)).all())
    torch.testing.assert_close(hard_mix(z, keep, partners), z2)
    with pytest.raises(ValueError, match="grid of z"):
        mix(z, cam[:, :4], pids)


def test_hard_mix_is_differentiable_in_z() -> None:
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    keep = torch.ones(2, 1, 4, 4)
    keep[:, :, :2] = 0
    hard_mix(z, keep, torch.tensor([1, 0])).sum().backward()
    assert z.grad is not None
    torch.testing.assert_close(z.grad, torch.ones_like(z))  # each cell is used exactly once


def test_row_ranges_follow_torch_adaptive_pooling() -> None:
    # row r holds the value r: a stripe's max is its last row, its mean the middle of its range
    x = torch.arange(16.0).reshape(1, 1, 16, 1)
    ranges = row_ranges(16, 3, "adaptive")
    assert F.adaptive_max_pool2d(x, (3, 1)).flatten().tolist() == [e - 1.0 for _, e in ranges]
    means = F.adaptive_avg_pool2d(x, (3, 1)).flatten().tolist()
    assert means == [(s + e - 1) / 2 for s, e in ranges]


def test_topk_block_mask_breaks_ties_by_first_block() -> None:
    cam = torch.zeros(1, 8, 4)  # every block scores 0 (a ReLU'd CAM often does)
    cam[0, 6:8, 2:4] = 1.0  # last block: the only positive one
    keep = topk_block_mask(cam, block_size=(3, 2), top_k=3)
    expected = torch.ones(8, 4)
    expected[6:8, 2:4] = 0  # the positive block, then the first two in row-major order
    expected[0:3, 0:4] = 0
    assert torch.equal(keep[0, 0], expected)
