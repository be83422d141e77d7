"""A training forward of every model forces at most two device-to-host syncs.

A sync (``.item()``, ``bool(tensor)``, boolean-mask indexing, ``nonzero``, ``unique``...) stalls
the host until the accelerator has caught up, so each one in the hot loop costs throughput. They
are counted on CPU by intercepting the aten operations that would sync on a GPU.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from reid_pipeline.models import ReidOutput, create_model, list_models

MAX_SYNCS = 2
aten = torch.ops.aten
_SYNC_OPS = {
    aten._local_scalar_dense.default,  # .item(), bool(), int(), float() of a tensor
    aten.nonzero.default,
    aten.masked_select.default,
    aten.bincount.default,
    aten._unique.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
}
_INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}


class SyncCounter(TorchDispatchMode):
    """Records the aten operations that force a device-to-host sync."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _SYNC_OPS:
            self.syncs.append(str(func))
        elif func in _INDEX_OPS and any(
            i is not None and i.dtype == torch.bool for i in args[1]
        ):  # boolean-mask indexing: the result size is data-dependent
            self.syncs.append(f"{func} (bool mask)")
        elif func is aten.repeat_interleave.Tensor and kwargs.get("output_size") is None:
            self.syncs.append(str(func))
        return func(*args, **kwargs)


def test_the_counter_sees_syncs() -> None:
    x = torch.tensor([0.0, 1.0, 2.0])
    with SyncCounter() as counter:
        _ = x[x > 0]
        _ = bool((x > 1).any())
        _ = x.nonzero()
        _ = x * 2  # no sync
    assert len(counter.syncs) == 3


@pytest.mark.parametrize("name", list_models())
def test_training_forward_syncs_at_most_twice(name: str) -> None:
    model = create_model(name, num_classes=5, backbone="resnet18", pretrained=False).train()
    cross = bool(getattr(model, "cross_modality", False))
    images = torch.randn(8, 3, 96, 48)
    pids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    # the cross-modality sampler's layout: per identity k visible then k infrared images
    modality = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1]) if cross else None
    with SyncCounter() as counter:
        out = model(images, targets=pids, modality=modality)
    assert isinstance(out, ReidOutput)
    assert len(counter.syncs) <= MAX_SYNCS, f"{name}: {counter.syncs}"
