"""Device, precision and memory-format resolution (CPU here; CUDA paths marked)."""

from __future__ import annotations

import pytest
import torch

from reid_pipeline.engine import device as device_module
from reid_pipeline.engine.device import (
    _cpu_flags,
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
def test_auto_is_cpu_without_channels_last_on_cpu() -> None:
    assert resolve_device("auto") == CPU
    assert resolve_channels_last("auto", CPU) is False
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu avx2 avx512f avx512bw", False),  # AVX-512 without bf16: emulated, stays fp32
        ("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),  # Zen 4, Cooper Lake
        ("fpu avx512f amx_bf16 amx_tile", True),  # Sapphire Rapids
        (None, False),  # no /proc/cpuinfo (macOS, Windows)
    ],
)
def test_auto_is_bf16_on_cpus_with_native_bf16_only(
    flags: str | None, native: bool, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\n")
    assert bool(_cpu_flags(str(cpuinfo)) & device_module.CPU_BF16_FLAGS) is native
    monkeypatch.setattr(device_module, "_cpu_flags", lambda: _cpu_flags(str(cpuinfo)))
    device_module.cpu_native_bf16.cache_clear()
    try:
        assert resolve_precision("auto", CPU) is (torch.bfloat16 if native else None)
        assert resolve_precision("fp32", CPU) is None
    finally:
        device_module.cpu_native_bf16.cache_clear()


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


@pytest.fixture
def fake_gpus(monkeypatch):
    """A machine with CUDA GPUs of the given compute capabilities (index -> (major, minor))."""

    def install(*caps: tuple[int, int], current: int = 0) -> list[int]:
        probed: list[int] = []

        def capability(dev=None) -> tuple[int, int]:
            index = torch.device(dev).index if dev is not None else current
            probed.append(index)
            return caps[index]

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(caps))
        monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
        monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev=None: "Fake GPU")
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **kw: True)  # emulation
        monkeypatch.setattr(torch.version, "hip", None)
        return probed

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    return install


def _torchrun(monkeypatch, local_rank: int, world: int = 2) -> None:
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("RANK", str(local_rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))


def test_each_rank_takes_its_own_gpu_for_auto_and_cuda(fake_gpus, monkeypatch) -> None:
    fake_gpus((8, 0), (8, 0), current=0)
    assert resolve_device("auto") == torch.device("cuda", 0)  # single process
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    _torchrun(monkeypatch, local_rank=1)
    # the bug of issue 18: a bare "cuda" used current_device() (GPU 0) on every rank
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cpu") == CPU
    with pytest.raises(ValueError, match=r"'cuda:0' names one GPU.*Use device 'cuda' or 'auto'"):
        resolve_device("cuda:0")
    with pytest.raises(ValueError, match=r"'cuda:1' names one GPU"):  # refused on every rank
        resolve_device("cuda:1")
    _torchrun(monkeypatch, local_rank=2, world=3)
    with pytest.raises(ValueError, match=r"LOCAL_RANK=2 but only 2 CUDA device"):
        resolve_device("cuda")


def test_auto_precision_is_bf16_only_with_native_support_on_the_ranks_own_gpu(fake_gpus) -> None:
    probed = fake_gpus((7, 0), (8, 0), (9, 0))  # a V100 beside an A100 and an H100
    v100, a100, h100 = (torch.device("cuda", i) for i in range(3))
    assert resolve_precision("auto", v100) is None  # is_bf16_supported() says True: emulation
    assert resolve_precision("auto", a100) is torch.bfloat16
    assert resolve_precision("auto", h100) is torch.bfloat16
    assert probed == [0, 1, 2]  # each device itself, not the current one
    assert resolve_precision("fp32", a100) is None
    assert resolve_precision("bf16", a100) is torch.bfloat16
    with pytest.raises(ValueError, match=r"compute capability 7\.0\) has no native bf16"):
        resolve_precision("bf16", v100)
    cpu_auto = torch.bfloat16 if device_module.cpu_native_bf16() else None  # the CPU's own
    assert resolve_precision("auto", CPU) is cpu_auto
    assert resolve_precision("bf16", CPU) is torch.bfloat16
