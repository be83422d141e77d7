"""Device, precision and memory-format handling shared by ``fit`` and ``extract_features``.

One code path for CPU and CUDA: on CUDA the batch is moved with ``non_blocking=True`` (truly
asynchronous when the loader pins memory), converted to ``channels_last`` and the forward runs
under bf16 autocast; on CPU the same calls run with those switches off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` (``cuda:0`` outside torchrun) when CUDA is available, else
    ``cpu``. Explicit strings (``"cpu"``, ``"cuda"``, ``"cuda:1"``) are checked against the machine.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        if torch.cuda.is_available():
            resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            resolved = torch.device("cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(
                f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
            ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} was requested but CUDA is not available")
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
        if resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {device!r} does not exist ({torch.cuda.device_count()} CUDA devices)"
            )
    elif resolved.type not in ("cpu", "mps", "xpu"):
        raise ValueError(f"device: unsupported device type {resolved.type!r}")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``precision``: ``None`` means plain fp32 (no autocast).

    ``"auto"`` is bf16 on a CUDA device that supports it and fp32 elsewhere; ``"bf16"`` is
    honoured on CPU too (CPU autocast), ``"fp32"`` disables autocast.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"precision: 'bf16' requested but {device} does not support bf16")
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def resolve_channels_last(channels_last: bool | str, device: torch.device) -> bool:
    """``"auto"`` -> True on CUDA (tensor-core friendly convolutions), False on CPU."""
    if channels_last == "auto":
        return device.type == "cuda"
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last: expected True, False or 'auto', got {channels_last!r}")
    return channels_last


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``; a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(tensor: Tensor, device: torch.device, *, channels_last: bool = False) -> Tensor:
    """Move one tensor; asynchronous on CUDA (overlaps with compute when the source is pinned)."""
    out = tensor.to(device, non_blocking=device.type == "cuda")
    if channels_last and out.ndim == 4:
        out = out.contiguous(memory_format=torch.channels_last)  # (B, C, H, W) NHWC-strided
    return out


REQUIRED_BATCH_KEYS = ("images", "pids")


def check_batch(batch: Any, *, where: str, keys: tuple[str, ...] = REQUIRED_BATCH_KEYS) -> None:
    """Clear error when a loader yields something other than the batch dict of the contract."""
    if not isinstance(batch, Mapping):
        raise TypeError(
            f"{where}: the loader must yield dicts with keys {list(keys)} (plus 'camids', "
            f"'modality', 'index'), got {type(batch).__name__}"
        )
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(
            f"{where}: batch is missing key(s) {missing}; got keys {sorted(batch)}, expected "
            f"{list(keys)} (plus 'camids', 'modality', 'index')"
        )
    images = batch["images"]
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{where}: batch['images'] must be a Tensor[B, 3, H, W], got {shape}")
