"""Device, precision and memory-format handling shared by ``fit`` and ``extract_features``.

One code path for CPU and CUDA: on CUDA the batch is moved with ``non_blocking=True`` (truly
asynchronous when the loader pins memory), converted to ``channels_last`` and the forward runs
under bf16 autocast where the GPU has native bf16; on CPU the same calls run without
``non_blocking`` and, unless ``channels_last=True`` is asked for, in NCHW (``"auto"``'s choice
there: fp32 convolutions are often slower in channels_last on CPU), under bf16 autocast where the
CPU has native bf16 instructions.

Under torchrun every process takes its own GPU, ``cuda:LOCAL_RANK``, for ``"auto"`` and
``"cuda"``; an explicit ``"cuda:N"`` is refused there (it would put every process on one GPU).
Precision ``"auto"`` is bf16 only where the hardware computes bf16 natively: a GPU of compute
capability 8.0 or newer (A100, H100, RTX 30xx / 40xx ...), probed on the process's own device,
or an x86 CPU with AVX512-BF16 or AMX-BF16 instructions (Intel Cooper Lake / Sapphire Rapids and
newer, AMD Zen 4 and newer; measured 1.6x-2.0x faster training than fp32 for every model here on
a 2-core Zen 4). Older GPUs (V100, T4) and other CPUs train in fp32. See docs/training.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

PRECISIONS = ("auto", "fp32", "bf16")


def _multi_process() -> tuple[bool, int]:
    """(started by a launcher with several processes, this process's LOCAL_RANK)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return world > 1 and "LOCAL_RANK" in os.environ, int(os.environ.get("LOCAL_RANK", "0") or 0)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The device this process trains on.

    ``"auto"``: ``cuda:LOCAL_RANK`` when CUDA is available (``cuda:0`` outside torchrun), else
    ``cpu``. ``"cuda"``: the same GPU choice, required. ``"cuda:N"``: GPU ``N`` in a single-process
    run; refused under a multi-process launch (every rank would share one GPU) - use ``"cuda"``
    or ``"auto"`` there, with ``CUDA_VISIBLE_DEVICES`` to pick which GPUs. ``"cpu"`` (also
    ``"mps"`` / ``"xpu"``) as given.
    """
    multi, local_rank = _multi_process()
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
        count = torch.cuda.device_count()
        if resolved.index is None:
            index = local_rank if multi else torch.cuda.current_device()
            if index >= count:
                raise ValueError(
                    f"device: this process has LOCAL_RANK={local_rank} but only {count} CUDA "
                    "device(s) are visible; start at most one process per GPU "
                    "(torchrun --nproc_per_node <= number of GPUs)"
                )
            resolved = torch.device("cuda", index)
        elif multi:
            raise ValueError(
                f"device: {device!r} names one GPU, but this is one of several processes "
                f"(WORLD_SIZE={os.environ.get('WORLD_SIZE')}): every process would use it. Use "
                "device 'cuda' or 'auto' (each process takes cuda:LOCAL_RANK) and "
                "CUDA_VISIBLE_DEVICES to choose the GPUs"
            )
        elif resolved.index >= count:
            raise ValueError(f"device: {device!r} does not exist ({count} CUDA devices)")
    elif resolved.type not in ("cpu", "mps", "xpu"):
        raise ValueError(f"device: unsupported device type {resolved.type!r}")
    return resolved


#: x86 CPU flags (/proc/cpuinfo) of instructions that compute bf16 dot products natively
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def _cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()  # not Linux, or no flags line: treated as no native bf16


@functools.cache
def cpu_native_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16) that
    oneDNN uses for bf16 convolutions and matrix products. Without them oneDNN emulates bf16,
    slower than fp32, so ``precision: auto`` stays fp32 there."""
    return torch.backends.mkldnn.is_available() and bool(CPU_BF16_FLAGS & _cpu_flags())


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware: CUDA compute capability >= 8.0 (Ampere and
    newer), probed on ``device`` itself, not on GPU 0 (``torch.cuda.is_bf16_supported()`` alone
    also answers True where bf16 is only emulated, slowly, on older GPUs); a CPU with
    AVX512-BF16 or AMX-BF16 (``cpu_native_bf16``)."""
    if device.type == "cpu":
        return cpu_native_bf16()
    if device.type != "cuda":
        return False
    if getattr(torch.version, "hip", None):  # ROCm: torch knows which gfx archs have bf16
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``precision``: ``None`` means plain fp32 (no autocast).

    ``"auto"``: bf16 on a device with native bf16 (``native_bf16``: recent GPUs and CPUs), fp32
    everywhere else (no fp16 + loss scaling: fp32 is exact and the metric losses stay stable).
    ``"bf16"``: required; on CUDA it must be native, on CPU it runs under CPU autocast.
    ``"fp32"``: no autocast.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cuda" and not native_bf16(device):
            cap = ".".join(map(str, torch.cuda.get_device_capability(device)))
            raise ValueError(
                f"precision: 'bf16' requested but {device} ({torch.cuda.get_device_name(device)},"
                f" compute capability {cap}) has no native bf16; use precision 'fp32' or 'auto'"
            )
        return torch.bfloat16
    return torch.bfloat16 if native_bf16(device) else None


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


def fp32_region(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """Autocast switched off (the metric losses compute in fp32); a no-op when ``dtype`` is None
    (nothing to switch off)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


def to_float32(obj: Any) -> Any:
    """``obj`` with every floating tensor in fp32: tensors, lists / tuples, dicts and dataclasses
    (``ReidOutput``) are walked; anything else is returned as it is."""
    if isinstance(obj, Tensor):
        return obj.float() if obj.is_floating_point() and obj.dtype != torch.float32 else obj
    if isinstance(obj, list | tuple):
        return type(obj)(to_float32(v) for v in obj)
    if isinstance(obj, Mapping):
        return {k: to_float32(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(
            obj, **{f.name: to_float32(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        )
    return obj


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
