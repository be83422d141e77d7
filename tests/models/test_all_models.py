"""Every registered model honours the contract of docs/models.md / models/base.py.

One parametrised test over ``list_models()``: build on resnet18 with a small input, forward in
train and eval mode, backward. Cross-modality models get a batch holding both modalities.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reid_pipeline.models import ReidOutput, create_model, list_models

NUM_CLASSES = 5
# P x K = 2 x 4 (PK-sampler shaped: every identity has partners of another identity); for
# visible-infrared models each identity has 2 visible + 2 infrared images.
PIDS = torch.tensor([3, 3, 3, 3, 1, 1, 1, 1])
MODALITY = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
HEIGHT, WIDTH = 128, 64


def _build(name: str) -> torch.nn.Module:
    return create_model(name, num_classes=NUM_CLASSES, backbone="resnet18", pretrained=False)


def _total_loss(out: ReidOutput, pids: torch.Tensor) -> torch.Tensor:
    """A stand-in objective touching every returned tensor (the real losses live elsewhere)."""
    loss = sum(F.cross_entropy(logits, pids) for logits in out.logits)
    loss = loss + sum(feat.pow(2).mean() for feat in out.feats)
    for value in out.extras.values():
        for tensor in value if isinstance(value, list) else [value]:
            if tensor.is_floating_point() and tensor.requires_grad:
                loss = loss + tensor.pow(2).mean()
    return loss


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name: str) -> None:
    model = _build(name)
    assert isinstance(model.feat_dim, int)
    assert model.feat_dim > 0
    assert model.num_classes == NUM_CLASSES
    cross = bool(getattr(model, "cross_modality", False))
    modality = MODALITY if cross else None
    images = torch.randn(len(PIDS), 3, HEIGHT, WIDTH)
    b = len(PIDS)

    # parameter names the optimiser's groups match on
    names = [n for n, _ in model.named_parameters()]
    assert any(n.startswith("backbone.") for n in names), f"{name}: no backbone.* parameters"
    assert any("classifier" in n for n in names), f"{name}: no *classifier* parameters"

    # ---- training mode: ReidOutput, one entry per supervised branch
    model.train()
    out = model(images, targets=PIDS, modality=modality)
    assert isinstance(out, ReidOutput), f"{name}: train forward returned {type(out).__name__}"
    assert isinstance(out.logits, list)
    assert isinstance(out.feats, list)
    assert isinstance(out.extras, dict)
    assert out.logits, f"{name}: no logits to supervise"
    for logits in out.logits:
        assert logits.shape == (b, NUM_CLASSES)
        assert torch.isfinite(logits).all()
    for feat in out.feats:
        assert feat.ndim == 2
        assert feat.shape[0] == b
        assert torch.isfinite(feat).all()

    # ---- backward: gradients reach the first layer of the trunk
    model.zero_grad(set_to_none=True)
    _total_loss(out, PIDS).backward()
    backbone_params = [(n, p) for n, p in model.named_parameters() if n.startswith("backbone.")]
    first_name, first = backbone_params[0]
    assert first.grad is not None, f"{name}: no gradient reached {first_name}"
    assert first.grad.abs().sum() > 0, f"{name}: zero gradient at {first_name}"
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {n}"

    # ---- eval mode: (B, feat_dim), independent of the rest of the batch
    model.eval()
    with torch.no_grad():
        emb = model(images, modality=modality)
        assert isinstance(emb, torch.Tensor)
        assert emb.shape == (b, model.feat_dim)
        assert torch.isfinite(emb).all()
        part = model(images[:3], modality=None if modality is None else modality[:3])
    torch.testing.assert_close(part, emb[:3], rtol=1e-4, atol=1e-5)

    if cross:
        with pytest.raises(ValueError, match="modality"):
            model(images)
