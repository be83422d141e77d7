"""Center loss: value, gradients, centres per branch, BoT's centre optimiser via param groups."""

from __future__ import annotations

import pytest
import torch

from reid_pipeline.losses import build_criterion
from reid_pipeline.losses.center import CenterLoss, loss_param_groups
from reid_pipeline.models.base import ReidOutput


def make(num_classes: int = 3, feat_dims: list[int] | None = None, **kw: object) -> CenterLoss:
    return CenterLoss(num_classes=num_classes, feat_dims=feat_dims or [2], **kw)


def test_matches_hand_computation() -> None:
    loss = make()
    with torch.no_grad():
        loss.centers[0].copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 0.0]]))
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [2.0, 4.0]])
    pids = torch.tensor([0, 0, 1, 2])
    # squared distances to own centre: 1, 4, 0, 9 + 16 = 25 -> mean 7.5
    value = loss(ReidOutput([], [feats]), pids)
    assert value.item() == pytest.approx(7.5)


def test_gradients_reach_features_and_centres() -> None:
    loss = make(num_classes=2, feat_dims=[3])
    feats = torch.randn(4, 3, requires_grad=True)
    pids = torch.tensor([0, 0, 1, 1])
    loss(ReidOutput([], [feats]), pids).backward()
    centers = loss.centers[0]
    expected = torch.stack(
        [2 / 4 * (2 * centers[j] - feats[pids == j].sum(0)) for j in range(2)]
    ).detach()
    torch.testing.assert_close(centers.grad, expected)
    torch.testing.assert_close(feats.grad, (2 / 4 * (feats - centers[pids])).detach())


def test_one_set_of_centres_per_branch_with_its_dim() -> None:
    loss = make(num_classes=4, feat_dims=[2, 5])
    assert [tuple(c.shape) for c in loss.centers] == [(4, 2), (4, 5)]
    a, b = torch.randn(3, 2), torch.randn(3, 5)
    pids = torch.tensor([0, 1, 3])
    both = loss(ReidOutput([], [a, b]), pids)
    manual = sum(
        ((f - c[pids]) ** 2).sum(1).mean() for f, c in zip((a, b), loss.centers, strict=True)
    )
    assert both.item() == pytest.approx(float(manual.detach()), rel=1e-6)
    only = make(num_classes=4, feat_dims=[2, 5], branches=[1])
    assert [tuple(c.shape) for c in only.centers] == [(4, 5)]
    value = only(ReidOutput([], [a, b]), pids)
    assert value.item() == pytest.approx(
        float(((b - only.centers[0][pids]) ** 2).sum(1).mean().detach())
    )


def test_build_criterion_takes_num_classes_and_feat_dims_from_context() -> None:
    crit = build_criterion(
        [{"name": "center", "weight": 5e-4}], context={"num_classes": 7, "feat_dims": [16]}
    )
    term = crit.terms[0]
    assert isinstance(term, CenterLoss)
    assert tuple(term.centers[0].shape) == (7, 16)
    assert term.centers_lr == 0.5


def test_param_groups_reproduce_bot_centre_update() -> None:
    weight = 5e-4
    crit = build_criterion(
        [{"name": "center", "weight": weight}], context={"num_classes": 3, "feat_dims": [4]}
    )
    groups = loss_param_groups(crit)
    assert len(groups) == 1
    group = groups[0]
    assert group["name"] == "center"
    assert group["optimizer"] == "sgd"
    assert group["lr"] == pytest.approx(0.5 / weight)
    assert group["momentum"] == 0.0
    assert group["weight_decay"] == 0.0
    centers = crit.terms[0].centers[0]
    before = centers.detach().clone()
    feats = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    # BoT: grad of the unweighted loss, SGD lr 0.5 -> c_j -= 0.5 * 2/B * sum_i (c_j - x_i)
    bot = before.clone()
    for j in range(3):
        bot[j] -= 0.5 * 2 / 6 * (before[j] - feats[pids == j]).sum(0)
    optimizer = torch.optim.SGD(
        [{"params": group["params"], "lr": group["lr"]}], lr=group["lr"], momentum=0.0
    )
    total, _ = crit(ReidOutput([], [feats]), pids)
    total.backward()
    optimizer.step()
    torch.testing.assert_close(centers.detach(), bot, rtol=1e-4, atol=1e-5)


def test_zero_weight_and_parameter_free_terms_give_no_group() -> None:
    crit = build_criterion(
        [{"name": "ce"}, {"name": "center", "weight": 0.0}],
        context={"num_classes": 3, "feat_dims": [4]},
    )
    assert loss_param_groups(crit) == []


@pytest.mark.parametrize(
    ("entry", "context", "match"),
    [
        ({"name": "center"}, {}, "num_classes"),
        ({"name": "center"}, {"num_classes": 3}, "feat_dims"),
        ({"name": "center"}, {"num_classes": 0, "feat_dims": [4]}, "num_classes"),
        ({"name": "center"}, {"num_classes": 3, "feat_dims": [0]}, "feat_dims"),
        ({"name": "center", "centers_lr": -1}, {"num_classes": 3, "feat_dims": [4]}, "centers_lr"),
        ({"name": "center", "branches": [2]}, {"num_classes": 3, "feat_dims": [4]}, "branches"),
        ({"name": "center", "alpha": 0.5}, {"num_classes": 3, "feat_dims": [4]}, "alpha"),
    ],
)
def test_bad_options_fail_in_build_criterion(entry: dict, context: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_criterion([entry], context=context)


def test_bad_batches_raise_clear_errors() -> None:
    loss = make(num_classes=3, feat_dims=[2])
    with pytest.raises(ValueError, match=r"pids must be in \[0, num_classes=3\)"):
        loss(ReidOutput([], [torch.zeros(2, 2)]), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"feats\[0\] has shape"):
        loss(ReidOutput([], [torch.zeros(2, 5)]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="built for 1"):
        loss(ReidOutput([], [torch.zeros(2, 2), torch.zeros(2, 2)]), torch.tensor([0, 1]))
