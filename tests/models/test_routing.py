"""Modality routing: exact sub-batches, one host sync per batch, memory format kept."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reid_pipeline.models.layers.routing import ModalitySplit


def _stems() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    make = lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())  # noqa: E731
    return make(), make()


def _reference(x: torch.Tensor, modality: torch.Tensor, vis: nn.Module, ir: nn.Module):
    """Boolean-mask routing (what the split replaces)."""
    is_ir = modality.bool()
    out = torch.empty((x.shape[0], 8, *x.shape[2:]))
    out[~is_ir] = vis(x[~is_ir])
    out[is_ir] = ir(x[is_ir])
    return out


@pytest.mark.parametrize(
    "modality", [[0, 0, 1, 1, 0, 0, 1, 1], [1, 0, 1, 0, 0, 1], [0, 0, 0], [1, 1], [0, 1, 1, 1]]
)
def test_route_equals_boolean_mask_routing_with_gradients(modality: list[int]) -> None:
    vis, ir = _stems()
    mod = torch.tensor(modality)
    x = torch.randn(len(modality), 3, 6, 4, requires_grad=True)
    out = ModalitySplit.of(mod).route(x, vis, ir)
    (grad_out,) = torch.autograd.grad(out.pow(2).sum(), x)
    ref = _reference(x, mod, vis, ir)
    (grad_ref,) = torch.autograd.grad(ref.pow(2).sum(), x)
    assert torch.equal(out, ref)
    assert torch.equal(grad_out, grad_ref)


def test_split_counts_and_values() -> None:
    split = ModalitySplit.of(torch.tensor([1, 0, 1, 1]))
    assert (split.num_visible, split.num_infrared) == (1, 3)
    assert split.visible_index.tolist() == [1]
    assert split.infrared_index.tolist() == [0, 2, 3]
    assert ModalitySplit.of(torch.tensor([1, 1])).visible_index is None
    with pytest.raises(ValueError, match=r"0 \(visible\) or 1 \(infrared\), got values \[0, 2\]"):
        ModalitySplit.of(torch.tensor([0, 2, 0]))
    with pytest.raises(ValueError, match=r"0 \(visible\) or 1 \(infrared\)"):
        ModalitySplit.of(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="TwoStream needs modality"):
        ModalitySplit.coerce(None, "TwoStream")


def test_channels_last_is_kept() -> None:
    vis, ir = _stems()
    x = torch.randn(4, 3, 6, 4).to(memory_format=torch.channels_last)
    out = ModalitySplit.of(torch.tensor([0, 1, 0, 1])).route(x, vis, ir)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert not out.is_contiguous()
    ref = _reference(x.contiguous(), torch.tensor([0, 1, 0, 1]), vis, ir)
    torch.testing.assert_close(out, ref)
