"""CMKIC on a hand-built batch: key instances and value against a manual computation."""

from __future__ import annotations

import math

import pytest
import torch

from reid_pipeline.losses import build_criterion
from reid_pipeline.losses.cmkic import (
    CMKICLoss,
    cmkic_loss,
    cross_modality_masks,
    key_instance_mask,
)
from reid_pipeline.models.base import ReidOutput

# name: (angle in degrees on the unit circle, pid, modality)
SAMPLES = {
    "v0": (0.0, 0, 0),
    "v1": (90.0, 1, 0),
    "v2": (200.0, 2, 0),  # visible, no infrared positive: skipped as an anchor
    "i0": (10.0, 0, 1),
    "i1": (40.0, 0, 1),
    "i2": (70.0, 0, 1),
    "i3": (100.0, 1, 1),
    "i4": (160.0, 1, 1),
}
NAMES = list(SAMPLES)


def _batch(scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ang = torch.tensor([math.radians(SAMPLES[n][0]) for n in NAMES], dtype=torch.float64)
    z = scale * torch.stack([ang.cos(), ang.sin()], dim=1).float()
    pids = torch.tensor([SAMPLES[n][1] for n in NAMES])
    modality = torch.tensor([SAMPLES[n][2] for n in NAMES])
    return z, pids, modality


def _manual(k: int, t: float) -> float:
    """Loop-by-loop transcription of the formula in the module docstring."""

    def cos(a: str, b: str) -> float:
        return math.cos(math.radians(SAMPLES[a][0] - SAMPLES[b][0]))

    direction_losses = []
    for anchor_mod in (0, 1):
        per_anchor = []
        for a in NAMES:
            _, pid, mod = SAMPLES[a]
            if mod != anchor_mod:
                continue
            others = [n for n in NAMES if SAMPLES[n][2] != mod]
            pos = [n for n in others if SAMPLES[n][1] == pid]
            neg = [n for n in others if SAMPLES[n][1] != pid]
            if not pos:
                continue
            key = sorted(pos, key=lambda p, a=a: cos(a, p))[:k]
            neg_sum = sum(math.exp(cos(a, n) / t) for n in neg)
            terms = [
                -math.log(math.exp(cos(a, p) / t) / (math.exp(cos(a, p) / t) + neg_sum))
                for p in key
            ]
            per_anchor.append(sum(terms) / len(terms))
        direction_losses.append(sum(per_anchor) / len(per_anchor) if per_anchor else 0.0)
    return sum(direction_losses)


def test_masks_and_key_instances_pick_least_similar_cross_modality_positives() -> None:
    z, pids, modality = _batch()
    pos, neg = cross_modality_masks(pids, modality)
    key = key_instance_mask(z @ z.t(), pos, k=2)
    idx = {n: i for i, n in enumerate(NAMES)}
    chosen = {a: sorted(NAMES[j] for j in key[idx[a]].nonzero().flatten().tolist()) for a in NAMES}
    # v0's positives are i0 (10 deg), i1 (40), i2 (70): the two least similar are i1 and i2
    assert chosen["v0"] == ["i1", "i2"]
    assert chosen["v1"] == ["i3", "i4"]  # only two positives: both are key instances
    assert chosen["v2"] == []  # no infrared sample of pid 2
    assert chosen["i0"] == ["v0"]
    assert chosen["i4"] == ["v1"]
    assert sorted(NAMES[j] for j in neg[idx["v0"]].nonzero().flatten().tolist()) == ["i3", "i4"]
    assert not pos[idx["v0"], idx["v1"]]  # same modality is never a positive


@pytest.mark.parametrize(("k", "t"), [(2, 0.1), (1, 0.5), (5, 0.1)])
def test_value_equals_manual_computation(k: int, t: float) -> None:
    z, pids, modality = _batch(scale=3.0)  # projections are normalised: scale is irrelevant
    value = cmkic_loss(z, pids, modality, k=k, temperature=t)
    assert value.item() == pytest.approx(_manual(k, t), rel=1e-5)


def test_gradient_pulls_key_positive_towards_anchor() -> None:
    z, pids, modality = _batch()
    z.requires_grad_(True)
    cmkic_loss(z, pids, modality, k=1).backward()
    assert z.grad is not None
    assert torch.isfinite(z.grad).all()
    # a gradient step on i2 (v0's hardest positive) must raise its similarity to v0
    i2, v0 = NAMES.index("i2"), NAMES.index("v0")
    stepped = torch.nn.functional.normalize(z[i2] - 0.1 * z.grad[i2], dim=0)
    assert (stepped @ z[v0]).item() > (z[i2] @ z[v0]).item()


def test_no_cross_modality_positive_gives_zero_with_gradient() -> None:
    z = torch.randn(4, 8, requires_grad=True)
    pids = torch.tensor([0, 1, 2, 3])
    modality = torch.tensor([0, 0, 1, 1])
    value = cmkic_loss(z, pids, modality)
    assert value.item() == 0.0
    value.backward()
    assert z.grad is not None
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_module_adds_weighted_auxiliary_term_and_builds_from_parameters() -> None:
    z, pids, modality = _batch()
    z_aux = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))  # another geometry
    out = ReidOutput(logits=[], feats=[], extras={"proj": z, "proj_aux": z_aux})
    main = cmkic_loss(z, pids, modality, k=2, temperature=0.1)
    aux = cmkic_loss(z_aux, pids, modality, k=2, temperature=0.1)
    assert aux.item() != pytest.approx(main.item())
    loss = CMKICLoss(k=2)(out, pids, modality)
    assert loss.item() == pytest.approx(main.item() + 0.5 * aux.item(), rel=1e-6)
    criterion = build_criterion([{"name": "cmkic", "weight": 2.0, "k": 2, "aux_weight": 0.0}])
    total, parts = criterion(out, pids, modality)
    assert total.item() == pytest.approx(2.0 * main.item(), rel=1e-6)
    assert parts["cmkic"].item() == pytest.approx(main.item(), rel=1e-6)


def test_bad_options_and_inputs_are_named() -> None:
    z, pids, modality = _batch()
    with pytest.raises(ValueError, match="no extras\\['proj_aux'\\]"):
        CMKICLoss()(ReidOutput(logits=[], feats=[], extras={"proj": z}), pids, modality)
    with pytest.raises(ValueError, match="pass modality"):
        CMKICLoss()(ReidOutput(logits=[], feats=[], extras={"proj": z}), pids, None)
    with pytest.raises(ValueError, match="k must be a positive int"):
        CMKICLoss(k=0)
    with pytest.raises(ValueError, match="temperature"):
        build_criterion([{"name": "cmkic", "temperature": 0.0}])
    with pytest.raises(ValueError, match="cmkic"):
        build_criterion([{"name": "cmkic", "margin": 0.3}])
    with pytest.raises(ValueError, match="expected projections"):
        cmkic_loss(z[:3], pids, modality)
