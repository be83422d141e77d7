"""Per-sample modality routing for visible-infrared models, with one host sync per batch.

A visible-infrared batch mixes visible (``modality`` 0) and infrared (1) images; a two-stream
stem or a modality-specific block sends each sample through the module of its modality. The
sub-batches must be exactly the samples of each modality, in batch order (their BatchNorm
statistics are those of the sub-batch), and splitting a batch needs the sub-batch sizes on the
host. :class:`ModalitySplit` computes them once per forward (one device-to-host read that also
validates the values) and every routed block of that forward reuses it: the gathers and the
scatter back are index operations with no further sync (boolean-mask indexing would sync at
every block). A batch of a single modality goes through its module whole, without any copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

MODALITY_VALUES_MESSAGE = "modality must hold 0 (visible) or 1 (infrared), got values {values}"


def memory_format_of(x: Tensor) -> torch.memory_format:
    """``channels_last`` for a 4-d tensor stored channels-last, else the default format."""
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


@dataclass(frozen=True)
class ModalitySplit:
    """How a batch divides by modality.

    ``modality``: the ``LongTensor[B]`` it was computed from. ``num_visible``/``num_infrared``:
    host ints. ``visible_index``/``infrared_index``: the batch positions of each modality in
    batch order (``None`` when the batch holds one modality only).
    """

    modality: Tensor
    num_visible: int
    num_infrared: int
    visible_index: Tensor | None
    infrared_index: Tensor | None

    @classmethod
    def of(cls, modality: Tensor) -> ModalitySplit:
        """Validate ``modality`` (integers 0 / 1) and split; one host sync."""
        if modality.dtype.is_floating_point:
            raise ValueError(MODALITY_VALUES_MESSAGE.format(values=_values(modality)))
        n = modality.numel()
        invalid = ((modality != 0) & (modality != 1)).sum()
        infrared = (modality == 1).sum()
        # one read for both numbers: invalid * (n + 1) + infrared
        invalid_count, num_infrared = divmod(int(invalid * (n + 1) + infrared), n + 1)
        if invalid_count:
            raise ValueError(MODALITY_VALUES_MESSAGE.format(values=_values(modality)))
        vis_idx = ir_idx = None
        if 0 < num_infrared < n:
            order = torch.argsort(modality.long(), stable=True)  # visible first, batch order kept
            vis_idx, ir_idx = order[: n - num_infrared], order[n - num_infrared :]
        return cls(modality, n - num_infrared, num_infrared, vis_idx, ir_idx)

    @classmethod
    def coerce(cls, modality: Tensor | ModalitySplit | None, where: str) -> ModalitySplit:
        """A split from a split (as is) or a modality tensor; ``None`` is refused."""
        if isinstance(modality, ModalitySplit):
            return modality
        if modality is None:
            raise ValueError(f"{where} needs modality (LongTensor[B], 0 visible, 1 infrared)")
        return cls.of(modality)

    def route(
        self, x: Tensor, visible: Callable[[Tensor], Tensor], infrared: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """``out[i] = visible(x)[i]`` for visible samples and ``infrared(x)[i]`` for the others;
        each module sees only its own samples, in batch order. Keeps ``x``'s memory format."""
        if self.num_infrared == 0:
            return visible(x)
        if self.num_visible == 0:
            return infrared(x)
        assert self.visible_index is not None
        assert self.infrared_index is not None
        vis_idx = self.visible_index.to(x.device)
        ir_idx = self.infrared_index.to(x.device)
        fmt = memory_format_of(x)
        vis_out = visible(x.index_select(0, vis_idx).contiguous(memory_format=fmt))  # (Bv, ...)
        ir_out = infrared(x.index_select(0, ir_idx).contiguous(memory_format=fmt))  # (Bi, ...)
        out = torch.empty(
            (x.shape[0], *vis_out.shape[1:]),
            dtype=vis_out.dtype,
            device=vis_out.device,
            memory_format=memory_format_of(vis_out),
        )
        out.index_copy_(0, vis_idx, vis_out)  # in place: the out-of-place copy drops the format
        return out.index_copy_(0, ir_idx, ir_out)  # (B, ...)


def _values(modality: Tensor) -> list[float | int]:
    return sorted(set(modality.flatten().tolist()))[:5]
