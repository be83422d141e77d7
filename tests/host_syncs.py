"""Counting device-to-host syncs on CPU, for the host-sync tests of losses and models.

A sync (``.item()``, ``bool(tensor)``, boolean-mask indexing, ``nonzero``, ``unique``,
``bincount``...) stalls the host until the accelerator has caught up and blocks CUDA graphs.
``SyncCounter`` intercepts the aten operations that would sync on a GPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

MAX_SYNCS = 2
aten = torch.ops.aten
_SYNC_OPS = {
    aten._local_scalar_dense.default,  # .item(), bool(), int(), float() of a tensor
    aten.is_nonzero.default,
    aten.equal.default,
    aten.nonzero.default,
    aten.argwhere.default,
    aten.masked_select.default,
    aten.bincount.default,
    aten._unique.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten.unique_dim_consecutive.default,
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
