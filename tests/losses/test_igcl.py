"""IGCL on hand-built centres."""

from __future__ import annotations

import math

import pytest
import torch

from reid_pipeline.losses import build_criterion
from reid_pipeline.losses.igcl import IGCLLoss, igcl_terms, modality_centers
from reid_pipeline.models.base import ReidOutput

# pid 0: visible (0,0),(2,0) -> cV (1,0); infrared (1,2) -> cI (1,2); c (1,1); ||cV-cI|| = 2
# pid 1: visible (4,1) -> cV (4,1); infrared (4,3),(4,5) -> cI (4,4); c (4,2.5); ||cV-cI|| = 3
# pid 2: visible only (1,1.5) -> c (1,1.5); no intra term
FEATS = torch.tensor([[0, 0], [2, 0], [1, 2], [4, 1], [4, 3], [4, 5], [1, 1.5]])
PIDS = torch.tensor([0, 0, 0, 1, 1, 1, 2])
MODALITY = torch.tensor([0, 0, 1, 0, 1, 1, 0])


def test_centres() -> None:
    ids, c_v, c_i, has_v, has_i = modality_centers(FEATS, PIDS, MODALITY)
    assert ids.tolist() == [0, 1, 2]
    assert torch.allclose(c_v, torch.tensor([[1.0, 0], [4, 1], [1, 1.5]]))
    assert torch.allclose(c_i[:2], torch.tensor([[1.0, 2], [4, 4]]))
    assert has_v.tolist() == [True, True, True]
    assert has_i.tolist() == [True, True, False]


def test_hand_built_value() -> None:
    intra, inter = igcl_terms(FEATS, PIDS, MODALITY, rho=1.0, normalize=False)
    assert intra.item() == pytest.approx((2.0 + 3.0) / 2)  # pid 2 has no infrared centre
    # nearest other centre: c0 -> c2 at 0.5, c1 -> c2 at sqrt(10), c2 -> c0 at 0.5
    assert inter.item() == pytest.approx((0.5 + 0.0 + 0.5) / 3)
    _, inter_wide = igcl_terms(FEATS, PIDS, MODALITY, rho=4.0, normalize=False)
    expected = ((4 - 0.5) + (4 - math.sqrt(10)) + (4 - 0.5)) / 3
    assert inter_wide.item() == pytest.approx(expected, rel=1e-6)
    loss = IGCLLoss(lam=2.0, rho=1.0, normalize=False)(
        ReidOutput(logits=[], feats=[FEATS]), PIDS, MODALITY
    )
    assert loss.item() == pytest.approx(2.0 * (2.5 + 1.0 / 3), rel=1e-6)


def test_normalised_features_are_scale_free() -> None:
    scales = torch.tensor([1.0, 3.0, 0.5, 2.0, 7.0, 1.5, 4.0]).unsqueeze(1)
    shifted = FEATS + 1.0  # no zero vector
    a = igcl_terms(shifted, PIDS, MODALITY, rho=0.5)
    b = igcl_terms(shifted * scales, PIDS, MODALITY, rho=0.5)
    assert a[0].item() == pytest.approx(b[0].item(), rel=1e-5)
    assert a[1].item() == pytest.approx(b[1].item(), rel=1e-5)
    assert a[0].item() > 0


def test_gradient_and_degenerate_batches() -> None:
    feats = FEATS.clone().requires_grad_(True)
    intra, inter = igcl_terms(feats, PIDS, MODALITY, rho=1.0, normalize=False)
    (intra + inter).backward()
    assert feats.grad is not None
    assert torch.isfinite(feats.grad).all()
    # the intra term pulls pid 0's infrared sample down towards its visible centre
    assert feats.grad[2, 1].item() > 0
    # one modality only: intra is zero; one identity only: inter is zero; both keep a gradient
    single = torch.randn(4, 3, requires_grad=True)
    intra, inter = igcl_terms(single, torch.tensor([0, 0, 1, 1]), torch.zeros(4, dtype=torch.long))
    assert intra.item() == 0.0
    assert intra.requires_grad
    intra, inter = igcl_terms(single, torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 0, 1]))
    assert inter.item() == 0.0
    assert inter.requires_grad
    assert intra.item() > 0


def test_registry_options_and_errors() -> None:
    criterion = build_criterion([{"name": "igcl", "lam": 1.0, "rho": 1.0, "normalize": False}])
    out = ReidOutput(logits=[], feats=[FEATS, FEATS * 0.0])
    total, _ = criterion(out, PIDS, MODALITY)
    # second branch: all features zero -> intra 0, inter = rho
    assert total.item() == pytest.approx(2.5 + 1.0 / 3 + 1.0, rel=1e-6)
    only_first = IGCLLoss(rho=1.0, normalize=False, branches=[0])(out, PIDS, MODALITY)
    assert only_first.item() == pytest.approx(2.5 + 1.0 / 3, rel=1e-6)
    with pytest.raises(ValueError, match="branches \\[2\\] out of range"):
        IGCLLoss(branches=[2])(out, PIDS, MODALITY)
    with pytest.raises(ValueError, match="pass modality"):
        IGCLLoss()(out, PIDS, None)
    with pytest.raises(ValueError, match="rho"):
        build_criterion([{"name": "igcl", "rho": -1.0}])
