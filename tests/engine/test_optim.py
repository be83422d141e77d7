"""Optimiser parameter groups and learning-rate schedules (the recipes of docs/models.md)."""

from __future__ import annotations

import math

import pytest
import torch

from reid_pipeline.engine.optim import build_loss_optimizers, build_optimizer, build_scheduler
from reid_pipeline.losses import Criterion

from .tiny import TinyCE, TinyModel, make_criterion


def _groups(opt: torch.optim.Optimizer) -> dict[str, dict]:
    return {g["name"]: g for g in opt.param_groups}


def _names(model: torch.nn.Module, params: list) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_agw_groups_lrs_and_frozen_bias_skipped() -> None:
    model = TinyModel(num_classes=5)
    spec = {
        "name": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "groups": [{"params": "bnneck|classifier", "lr": 0.1, "name": "head"}],
    }
    opt = build_optimizer(model, spec)
    assert isinstance(opt, torch.optim.SGD)
    groups = _groups(opt)
    assert set(groups) == {"default", "head"}
    assert _names(model, groups["head"]["params"]) == {
        "head.bnneck.weight",
        "head.classifier.weight",
    }  # the frozen BNNeck bias is not optimised
    assert "head.bnneck.bias" not in _names(model, groups["default"]["params"])
    assert groups["head"]["lr"] == pytest.approx(0.1)
    assert groups["head"]["base_lr"] == pytest.approx(0.1)
    assert groups["default"]["lr"] == pytest.approx(0.01)
    assert groups["head"]["momentum"] == 0.9
    assert groups["head"]["nesterov"] is True
    assert groups["head"]["weight_decay"] == pytest.approx(5e-4)
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in opt.param_groups) == n_trainable


def test_first_matching_group_wins_and_group_weight_decay() -> None:
    model = TinyModel()
    spec = {
        "name": "adamw",
        "lr": 1e-3,
        "betas": [0.8, 0.99],
        "weight_decay": 0.05,
        "groups": [
            {"params": r"classifier", "lr": 1e-2},
            {"params": r"weight$", "weight_decay": 0.0},
        ],
    }
    groups = _groups(build_optimizer(model, spec))
    assert _names(model, groups["group0"]["params"]) == {"head.classifier.weight"}
    assert "head.classifier.weight" not in _names(model, groups["group1"]["params"])
    assert groups["group1"]["weight_decay"] == 0.0
    assert groups["group1"]["lr"] == pytest.approx(1e-3)
    assert groups["default"]["weight_decay"] == pytest.approx(0.05)
    assert groups["default"]["betas"] == (0.8, 0.99)


def test_loss_declared_parameters_get_their_own_optimizer_unless_a_group_claims_them() -> None:
    model, crit = TinyModel(), make_criterion()
    centers = crit.terms[1].centers[0]
    spec = {"name": "adam", "lr": 3.5e-4}
    main = build_optimizer(model, spec, criterion=crit)
    assert set(_groups(main)) == {"default"}
    assert all(p is not centers for p in _groups(main)["default"]["params"])
    (own,) = build_loss_optimizers(crit, spec)
    assert isinstance(own, torch.optim.SGD)
    group = _groups(own)["criterion.center"]
    assert group["params"] == [centers]
    # BoT: plain SGD, lr 0.5 on the unweighted gradient = lr 0.5 / weight on the weighted one
    assert group["lr"] == pytest.approx(0.5 / 0.01)
    assert group["momentum"] == 0.0
    assert group["weight_decay"] == 0.0

    spec = {"name": "adam", "lr": 3.5e-4, "groups": [{"params": "^criterion\\.", "lr": 0.2}]}
    groups = _groups(build_optimizer(model, spec, criterion=crit))
    assert groups["group0"]["params"] == [centers]
    assert groups["group0"]["lr"] == pytest.approx(0.2)
    assert build_loss_optimizers(crit, spec) == []


class _Scaled(torch.nn.Module):
    """A loss with a learnable parameter and no ``optim_options``."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, output, pids, modality=None):
        return self.scale * output.logits[0].mean()


def test_criterion_without_declared_options_joins_default_group() -> None:
    model, crit = TinyModel(), Criterion([("ce", 1.0, TinyCE()), ("scaled", 1.0, _Scaled())])
    opt = build_optimizer(model, {"name": "sgd", "lr": 0.1}, criterion=crit)
    assert any(p is crit.terms[1].scale for p in _groups(opt)["default"]["params"])
    assert build_loss_optimizers(crit, {"name": "sgd", "lr": 0.1}) == []


def test_fused_adam_on_cpu_is_the_same_update_up_to_rounding() -> None:
    """The CPU recipes' ``fused: true``: torch's one-kernel Adam, with the spec's groups and
    weight decay, steps the weights as the default per-tensor loop does (float rounding apart)."""
    spec = {"name": "adam", "lr": 1e-3, "weight_decay": 5e-4, "groups": [{"params": "head"}]}
    weights = []
    for extra in ({}, {"fused": True}):
        torch.manual_seed(0)
        model = TinyModel()
        start = torch.cat([p.detach().flatten() for p in model.parameters()])
        opt = build_optimizer(model, spec | extra)
        assert opt.defaults["fused"] is (True if extra else None)
        for _ in range(5):
            opt.zero_grad()
            model(torch.randn(4, 3, 8, 4), targets=torch.arange(4)).logits[
                0
            ].square().sum().backward()
            opt.step()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(weights[0], weights[1], rtol=1e-5, atol=1e-6)
    assert (weights[1] - start).abs().max() > 1e-3  # the steps moved the weights


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "sgd", "lr": 0.1, "groups": [{"params": "nonexistent_layer"}]}, "nonexistent"),
        ({"name": "rmsprop", "lr": 0.1}, "optimizer.name"),
        ({"name": "sgd"}, "optimizer.lr"),
        ({"name": "adam", "lr": 0.1, "momentum": 0.9}, "optimizer.momentum"),
        ({"name": "sgd", "lr": -1}, "optimizer.lr"),
        ({"name": "sgd", "lr": 0.1, "groups": [{"params": "("}]}, "invalid regex"),
        ({"name": "sgd", "lr": 0.1, "groups": [{"lr": 0.1}]}, "groups[0]"),
        ({"name": "sgd", "lr": 0.1, "groups": [{"params": "x", "gamma": 1}]}, "gamma"),
    ],
)
def test_bad_optimizer_specs_name_the_key(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match="optimizer") as info:
        build_optimizer(TinyModel(), spec)
    assert message in str(info.value)


def _lrs(spec: dict, epochs: int, at: list[int], base: float) -> list[float]:
    sched = build_scheduler(spec, epochs=epochs)
    return [base * sched.factor(e) for e in at]


def test_bot_warmup_and_steps() -> None:
    spec = {
        "name": "step",
        "milestones": [40, 70],
        "gamma": 0.1,
        "warmup_epochs": 10,
        "warmup_factor": 0.01,
    }
    got = _lrs(spec, 120, [0, 5, 9, 10, 39, 40, 69, 70, 119], 3.5e-4)
    # The official WarmupMultiStepLR: factor = 0.01 * (1 - e / 10) + e / 10 during warm-up.
    want = [3.5e-6, 3.5e-4 * (0.01 * 0.5 + 0.5), 3.5e-4 * (0.001 + 0.9)]
    want += [3.5e-4, 3.5e-4, 3.5e-5, 3.5e-5, 3.5e-6, 3.5e-6]
    assert got == pytest.approx(want, rel=1e-12)


def test_agw_warmup_matches_official_formula() -> None:
    spec = {
        "name": "step",
        "milestones": [20, 50],
        "gamma": 0.1,
        "warmup_epochs": 9,
        "warmup_factor": 0.1,
    }
    sched = build_scheduler(spec, epochs=80)
    for e in range(80):
        official = (e + 1) / 10 if e < 10 else 1.0 if e < 20 else 0.1 if e < 50 else 0.01
        assert sched.factor(e) == pytest.approx(official, rel=1e-12), e


def test_pmm_stepwise_warmup() -> None:
    spec = {
        "name": "step",
        "milestones": [200, 300],
        "gamma": 0.1,
        "warmup_method": "stepwise",
        "warmup_epochs": 45,
        "warmup_steps": 9,
        "warmup_factor": 0.1,
    }
    got = _lrs(spec, 400, [0, 4, 5, 9, 10, 44, 45, 199, 200, 300], 1e-3)
    want = [1e-4, 1e-4, 2e-4, 2e-4, 3e-4, 9e-4, 1e-3, 1e-3, 1e-4, 1e-5]
    assert got == pytest.approx(want, rel=1e-9)


def test_cosine_after_warmup() -> None:
    spec = {"name": "cosine", "warmup_epochs": 2, "warmup_factor": 0.5, "min_factor": 0.1}
    sched = build_scheduler(spec, epochs=12)
    assert sched.factor(0) == pytest.approx(0.5)
    assert sched.factor(1) == pytest.approx(0.75)
    assert sched.factor(2) == pytest.approx(1.0)
    assert sched.factor(7) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert sched.factor(12) == pytest.approx(0.1)


def test_per_iteration_warmup_and_apply() -> None:
    spec = {"name": "constant", "warmup_epochs": 2, "warmup_factor": 0.2, "warmup_per_iter": True}
    sched = build_scheduler(spec, epochs=5, iters_per_epoch=4)
    assert sched.per_iteration
    assert sched.factor(0, 2) == pytest.approx(0.2 + 0.8 * 0.25)
    assert sched.factor(1, 2) == pytest.approx(0.2 + 0.8 * 0.75)
    opt = build_optimizer(
        TinyModel(), {"name": "sgd", "lr": 0.1, "groups": [{"params": "head", "lr": 1.0}]}
    )
    sched.apply(opt, 1, 0)
    assert _groups(opt)["default"]["lr"] == pytest.approx(0.1 * 0.6)
    assert _groups(opt)["group0"]["lr"] == pytest.approx(1.0 * 0.6)


def test_no_schedule_is_constant() -> None:
    sched = build_scheduler(None, epochs=3)
    assert [sched.factor(e) for e in range(3)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"name": "exp"}, "scheduler.name"),
        ({"name": "step", "milestones": [40, 20]}, "scheduler.milestones"),
        ({"name": "step", "milestones": "40"}, "scheduler.milestones"),
        ({"name": "cosine", "milestones": [3]}, "scheduler.milestones"),
        ({"name": "step", "warmup_factor": 2.0}, "scheduler.warmup_factor"),
        ({"name": "step", "warmup_method": "exp"}, "scheduler.warmup_method"),
        ({"name": "cosine", "warmup_epochs": 10}, "scheduler.warmup_epochs"),
        ({"name": "step", "lr": 0.1}, "unknown key"),
    ],
)
def test_bad_schedule_specs_name_the_key(spec: dict, key: str) -> None:
    with pytest.raises(ValueError, match="scheduler") as info:
        build_scheduler(spec, epochs=10)
    assert key in str(info.value)


def test_epoch_offset_reproduces_code_that_counts_epochs_from_one() -> None:
    """PMM's official adjust_lr(epoch + 1): the first stair at 0-based epoch 4, 1e-3 (factor 1)
    from epoch 44, decays at 199 and 299."""
    spec = {
        "name": "step",
        "milestones": [200, 300],
        "gamma": 0.1,
        "warmup_method": "stepwise",
        "warmup_epochs": 45,
        "warmup_steps": 9,
        "warmup_factor": 0.1,
    }
    plain = build_scheduler(spec, epochs=400)
    shifted = build_scheduler(spec | {"epoch_offset": 1}, epochs=400)
    assert shifted.factor(3) == pytest.approx(0.1)
    assert shifted.factor(4) == pytest.approx(0.2)
    assert plain.factor(4) == pytest.approx(0.1)  # one epoch later without the offset
    assert shifted.factor(43) < 1.0 <= shifted.factor(44) + 1e-12
    assert shifted.factor(198) == pytest.approx(1.0)
    assert shifted.factor(199) == pytest.approx(0.1)
    assert shifted.factor(299) == pytest.approx(0.01)
    assert "epoch_offset" not in plain.state_dict()  # old checkpoints keep resuming
    with pytest.raises(ValueError, match="epoch_offset"):
        build_scheduler(spec | {"epoch_offset": -1}, epochs=400)
