"""Label-smoothed cross-entropy against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from reid_pipeline.losses import build_criterion
from reid_pipeline.losses.classification import CrossEntropyLabelSmooth
from reid_pipeline.models.base import ReidOutput

LOGITS = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-1.0, 3.0, 1.0], [0.0, 0.0, 4.0]]
PIDS = [0, 1, 1, 2]


def hand_ce(logits: list[list[float]], pids: list[int], eps: float) -> float:
    """-sum_c q_c log p_c with q = (1 - eps) onehot + eps / C, averaged over the batch."""
    total = 0.0
    for row, y in zip(logits, pids, strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        c = len(row)
        for j, v in enumerate(row):
            q = (1 - eps) * (j == y) + eps / c
            total -= q * (v - log_z)
    return total / len(logits)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_matches_hand_computation(eps: float) -> None:
    loss = CrossEntropyLabelSmooth(epsilon=eps)
    out = ReidOutput(logits=[torch.tensor(LOGITS)], feats=[])
    value = loss(out, torch.tensor(PIDS))
    assert value.item() == pytest.approx(hand_ce(LOGITS, PIDS, eps), rel=1e-6)


def test_default_epsilon_is_bot_value() -> None:
    assert CrossEntropyLabelSmooth().epsilon == 0.1


def test_sums_branches_and_restricts_with_branches() -> None:
    a = torch.tensor(LOGITS)
    b = torch.tensor(LOGITS) * 2
    out = ReidOutput(logits=[a, b], feats=[])
    pids = torch.tensor(PIDS)
    one = hand_ce(LOGITS, PIDS, 0.1)
    two = hand_ce((b).tolist(), PIDS, 0.1)
    assert CrossEntropyLabelSmooth()(out, pids).item() == pytest.approx(one + two, rel=1e-6)
    only_second = CrossEntropyLabelSmooth(branches=[1])(out, pids)
    assert only_second.item() == pytest.approx(two, rel=1e-6)


def test_gradient_flows_and_bf16_logits_are_computed_in_float32() -> None:
    logits = torch.tensor(LOGITS, requires_grad=True)
    value = CrossEntropyLabelSmooth()(ReidOutput([logits], []), torch.tensor(PIDS))
    value.backward()
    assert logits.grad is not None
    assert logits.grad.abs().sum() > 0
    half = CrossEntropyLabelSmooth()(
        ReidOutput([torch.tensor(LOGITS).bfloat16()], []), torch.tensor(PIDS)
    )
    assert half.dtype == torch.float32


def test_through_build_criterion() -> None:
    crit = build_criterion([{"name": "ce", "weight": 2.0, "epsilon": 0.0}])
    total, parts = crit(ReidOutput([torch.tensor(LOGITS)], []), torch.tensor(PIDS))
    assert parts["ce"].item() == pytest.approx(hand_ce(LOGITS, PIDS, 0.0), rel=1e-6)
    assert total.item() == pytest.approx(2 * hand_ce(LOGITS, PIDS, 0.0), rel=1e-6)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"epsilon": 1.0}, "epsilon"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": "0.1"}, "epsilon"),
        ({"branches": [-1]}, "branches"),
        ({"branches": "0"}, "branches"),
        ({"margin": 0.3}, "margin"),
    ],
)
def test_bad_options_fail_in_build_criterion(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_criterion([{"name": "ce", **options}])


def test_bad_outputs_raise_clear_errors() -> None:
    pids = torch.tensor(PIDS)
    with pytest.raises(ValueError, match="no logits"):
        CrossEntropyLabelSmooth()(ReidOutput([], [torch.zeros(4, 2)]), pids)
    with pytest.raises(ValueError, match=r"branches \[3\] out of range"):
        CrossEntropyLabelSmooth(branches=[3])(ReidOutput([torch.tensor(LOGITS)], []), pids)
    with pytest.raises(ValueError, match=r"logits\[0\] has shape"):
        CrossEntropyLabelSmooth()(ReidOutput([torch.zeros(3, 3)], []), pids)
