"""Batch-hard triplet and weighted regularised triplet against hand values and plain loops."""

from __future__ import annotations

import math

import pytest
import torch

from reid_pipeline.losses import build_criterion
from reid_pipeline.losses.functional import pairwise_distance, self_distance
from reid_pipeline.losses.triplet import TripletLoss, WeightedRegularizedTriplet, hardest_pairs
from reid_pipeline.models.base import ReidOutput

# Four points on a line, two identities: a0=0, a1=1 (pid 0); b0=3, b1=5 (pid 1).
LINE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [5.0, 0.0]])
LINE_PIDS = torch.tensor([0, 0, 1, 1])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def out(feats: torch.Tensor) -> ReidOutput:
    return ReidOutput(logits=[], feats=[feats])


def loop_distance(x: list[list[float]], metric: str) -> list[list[float]]:
    rows = []
    for a in x:
        row = []
        for b in x:
            if metric == "euclidean":
                row.append(math.sqrt(sum((u - v) ** 2 for u, v in zip(a, b, strict=True))))
            else:
                dot = sum(u * v for u, v in zip(a, b, strict=True))
                na = math.sqrt(sum(u * u for u in a))
                nb = math.sqrt(sum(v * v for v in b))
                row.append(1 - dot / (na * nb))
        rows.append(row)
    return rows


def loop_triplet(x: torch.Tensor, pids: torch.Tensor, margin: float | None, metric: str) -> float:
    d = loop_distance(x.tolist(), metric)
    p = pids.tolist()
    terms = []
    for i in range(len(p)):
        pos = [d[i][j] for j in range(len(p)) if p[j] == p[i]]  # includes the anchor
        neg = [d[i][j] for j in range(len(p)) if p[j] != p[i]]
        if not neg:
            continue
        diff = max(pos) - min(neg)
        terms.append(softplus(diff) if margin is None else max(0.0, diff + margin))
    return sum(terms) / len(terms) if terms else 0.0


def loop_wrt(x: torch.Tensor, pids: torch.Tensor, metric: str) -> float:
    """AGW's formula row by row, including its stabiliser: weights exp(v - top) / (Z + 1e-6),
    where top is the row maximum of value * mask (masked entries count as 0)."""
    d = loop_distance(x.tolist(), metric)
    p = pids.tolist()
    n = len(p)
    terms = []
    for i in range(n):
        is_pos = [p[j] == p[i] for j in range(n)]
        if all(is_pos):
            continue
        pos_vals = [d[i][j] if is_pos[j] else 0.0 for j in range(n)]
        neg_vals = [-d[i][j] if not is_pos[j] else 0.0 for j in range(n)]
        top_p, top_n = max(pos_vals), max(neg_vals)
        ep = [math.exp(pos_vals[j] - top_p) if is_pos[j] else 0.0 for j in range(n)]
        en = [math.exp(neg_vals[j] - top_n) if not is_pos[j] else 0.0 for j in range(n)]
        zp, zn = sum(ep) + 1e-6, sum(en) + 1e-6
        ap = sum(ep[j] / zp * d[i][j] for j in range(n))
        an = sum(en[j] / zn * d[i][j] for j in range(n))
        terms.append(softplus(ap - an))
    return sum(terms) / len(terms)


def test_hard_margin_hand_value() -> None:
    # d_ap / d_an per anchor: a0 1/3, a1 1/2, b0 2/2, b1 2/4 -> only b0 violates: 0.3 / 4.
    value = TripletLoss(margin=0.3)(out(LINE), LINE_PIDS)
    assert value.item() == pytest.approx(0.075, abs=1e-6)


def test_hardest_pairs_hand_indices() -> None:
    # a0: furthest positive a1, closest negative b0; b0: furthest positive b1, closest neg a1
    pos, neg = hardest_pairs(self_distance(LINE), LINE_PIDS)
    assert pos.tolist() == [1, 0, 3, 2]
    assert neg.tolist() == [2, 2, 1, 1]


def test_soft_margin_hand_value() -> None:
    expected = (softplus(-2) + softplus(-1) + softplus(0) + softplus(-2)) / 4
    for loss in (TripletLoss(margin=None), TripletLoss(soft=True)):
        assert loss(out(LINE), LINE_PIDS).item() == pytest.approx(expected, abs=1e-6)


def test_wrt_hand_value() -> None:
    # Softmax-weighted positives (w ∝ exp(d)) and negatives (w ∝ exp(-d)) per anchor.
    def weighted(values: list[float], sign: float) -> float:
        w = [math.exp(sign * v) for v in values]
        return sum(a * b for a, b in zip(w, values, strict=True)) / sum(w)

    anchors = [([0, 1], [3, 5]), ([1, 0], [2, 4]), ([0, 2], [3, 2]), ([0, 2], [5, 4])]
    expected = sum(softplus(weighted(p, 1) - weighted(n, -1)) for p, n in anchors) / 4
    value = WeightedRegularizedTriplet()(out(LINE), LINE_PIDS)
    # AGW adds 1e-6 to each softmax normaliser: a few 1e-6 away from the exact softmax.
    assert value.item() == pytest.approx(expected, abs=1e-4)
    assert value.item() == pytest.approx(loop_wrt(LINE, LINE_PIDS, "euclidean"), abs=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("margin", [0.3, 1.0, None])
def test_triplet_matches_loop(metric: str, margin: float | None) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(9, 5, generator=gen)
    pids = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])  # pid 3 has no other positive
    value = TripletLoss(margin=margin, distance=metric)(out(x), pids)
    assert value.item() == pytest.approx(loop_triplet(x, pids, margin, metric), abs=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_wrt_matches_loop(metric: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 6, generator=gen)
    pids = torch.tensor([3, 3, 5, 5, 5, 7, 7, 9])
    value = WeightedRegularizedTriplet(distance=metric)(out(x), pids)
    assert value.item() == pytest.approx(loop_wrt(x, pids, metric), abs=1e-5)


def test_normalize_feature_uses_unit_vectors() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 4, generator=gen) * 10
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    unit = torch.nn.functional.normalize(x, dim=1)
    for cls in (TripletLoss, WeightedRegularizedTriplet):
        a = cls(normalize_feature=True)(out(x), pids)
        b = cls()(out(unit), pids)
        assert a.item() == pytest.approx(b.item(), abs=1e-6)


def test_sums_branches_and_branches_option() -> None:
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    y = torch.randn(6, 8, generator=torch.Generator().manual_seed(4))
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    both = ReidOutput([], [x, y])
    for cls in (TripletLoss, WeightedRegularizedTriplet):
        first, second = cls()(out(x), pids), cls()(out(y), pids)
        assert cls()(both, pids).item() == pytest.approx((first + second).item(), abs=1e-6)
        assert cls(branches=[1])(both, pids).item() == pytest.approx(second.item(), abs=1e-6)


def test_gradients_flow_and_diagonal_is_gradient_free() -> None:
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(5), requires_grad=True)
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    for cls in (TripletLoss, WeightedRegularizedTriplet):
        x.grad = None
        loss = TripletLoss(margin=5.0) if cls is TripletLoss else cls()
        loss(out(x), pids).backward()
        assert x.grad is not None
        assert torch.isfinite(x.grad).all()
        assert x.grad.abs().sum() > 0


def test_single_identity_batch_gives_zero_with_graph() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    pids = torch.zeros(4, dtype=torch.long)
    for loss in (TripletLoss(), WeightedRegularizedTriplet()):
        value = loss(out(x), pids)
        assert value.item() == 0.0
        value.backward()


def test_pairwise_distance_matches_cdist() -> None:
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(6))
    y = torch.randn(3, 7, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(pairwise_distance(x, y), torch.cdist(x, y), atol=1e-5, rtol=1e-5)


def test_bf16_features_computed_in_float32() -> None:
    value = TripletLoss()(out(LINE.bfloat16()), LINE_PIDS)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(0.075, abs=1e-6)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"name": "triplet", "margin": -0.1}, "margin"),
        ({"name": "triplet", "margin": "0.3"}, "margin"),
        ({"name": "triplet", "soft": "yes"}, "soft"),
        ({"name": "triplet", "distance": "l1"}, "distance"),
        ({"name": "triplet", "normalize_feature": 1}, "normalize_feature"),
        ({"name": "triplet", "branches": [0, 0]}, "branches"),
        ({"name": "triplet", "hard": True}, "hard"),
        ({"name": "wrt", "margin": 0.3}, "margin"),
        ({"name": "wrt", "distance": "manhattan"}, "distance"),
    ],
)
def test_bad_options_fail_in_build_criterion(entry: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_criterion([entry])


def test_bad_outputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="no feats"):
        TripletLoss()(ReidOutput([torch.zeros(4, 2)], []), LINE_PIDS)
    with pytest.raises(ValueError, match=r"feats\[0\] has shape"):
        WeightedRegularizedTriplet()(out(torch.zeros(3, 2)), LINE_PIDS)
