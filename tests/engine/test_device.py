"""Device, precision and memory-format resolution (CPU here; CUDA paths marked)."""

from __future__ import annotations

import pytest
import torch

from reid_pipeline.engine.device import (
    autocast,
    check_batch,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
    to_device,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CPU = torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_auto_is_cpu_fp32_without_channels_last_on_cpu() -> None:
    assert resolve_device("auto") == CPU
    assert resolve_precision("auto", CPU) is None
    assert resolve_channels_last("auto", CPU) is False
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_explicit_choices_and_errors() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device(torch.device("cpu")) == CPU
    assert resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    assert resolve_channels_last(True, CPU) is True
    with pytest.raises(ValueError, match="device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="channels_last"):
        resolve_channels_last("yes", CPU)


def test_autocast_bf16_on_cpu_and_noop_for_fp32() -> None:
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(CPU, torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(CPU, None):
        assert (a @ b).dtype == torch.float32


def test_to_device_channels_last() -> None:
    x = torch.randn(2, 3, 4, 5)
    y = to_device(x, CPU, channels_last=True)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, y)
    assert to_device(torch.arange(3), CPU, channels_last=True).shape == (3,)


def test_check_batch_messages() -> None:
    good = {"images": torch.zeros(2, 3, 4, 4), "pids": torch.zeros(2, dtype=torch.long)}
    check_batch(good, where="train loader")
    with pytest.raises(TypeError, match=r"train loader.*dicts"):
        check_batch((good["images"], good["pids"]), where="train loader")
    with pytest.raises(KeyError, match=r"missing key\(s\) \['pids'\]"):
        check_batch({"images": good["images"]}, where="train loader")
    with pytest.raises(ValueError, match=r"Tensor\[B, 3, H, W\]"):
        check_batch({"images": torch.zeros(3, 4, 4), "pids": good["pids"]}, where="x")


@pytest.mark.cuda
@cuda
def test_cuda_auto_is_bf16_channels_last_and_async_copy() -> None:
    dev = resolve_device("auto")
    assert dev.type == "cuda"
    assert resolve_precision("auto", dev) is torch.bfloat16
    assert resolve_channels_last("auto", dev) is True
    x = torch.randn(2, 3, 8, 8).pin_memory()
    y = to_device(x, dev, channels_last=True)
    assert y.is_cuda
    assert y.is_contiguous(memory_format=torch.channels_last)
    with autocast(dev, torch.bfloat16):
        assert (y.flatten(1) @ y.flatten(1).T).dtype == torch.bfloat16
