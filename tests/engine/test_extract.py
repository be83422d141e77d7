"""extract_features(): equal to a manual eval forward, flip averaging, order, modality."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from reid_pipeline.engine import Features, extract_features

from .tiny import TinyDataset, TinyModel


def _model(cross: bool = False) -> TinyModel:
    torch.manual_seed(0)
    model = TinyModel(cross_modality=cross)
    model.train()
    # non-trivial BN statistics so eval mode differs from train mode
    with torch.no_grad():
        model(torch.randn(8, 3, 16, 8) * 3 + 1, modality=torch.zeros(8, dtype=torch.long))
    return model


def _loader(n: int = 20, batch_size: int = 6) -> DataLoader:
    return DataLoader(TinyDataset(n, augment=False), batch_size=batch_size, shuffle=False)


def _manual(model: nn.Module, ds: TinyDataset, *, cross: bool = False) -> torch.Tensor:
    model.eval()
    mod = torch.arange(len(ds)) % 2
    with torch.no_grad():
        return model(ds.images, modality=mod if cross else None)


@pytest.mark.parametrize("cross", [False, True])
def test_equals_manual_forward_in_loader_order(cross: bool) -> None:
    model = _model(cross)
    loader = _loader()
    out = extract_features(model, loader, progress=False)
    assert model.training  # mode restored
    seen = model.seen_modality[-4:]  # the 4 batches of the extraction (20 / 6 rounded up)
    assert all((m is not None) == cross for m in seen)
    assert isinstance(out, Features)
    assert len(out) == 20
    assert out.feats.dtype == torch.float32
    assert out.feats.device.type == "cpu"
    ds = loader.dataset
    torch.testing.assert_close(out.feats, _manual(model, ds, cross=cross), rtol=1e-5, atol=1e-6)
    assert out.pids.tolist() == ds.pids.tolist()
    assert out.camids.tolist() == [i % 3 for i in range(20)]
    assert out.modality.tolist() == [i % 2 for i in range(20)]


def test_flip_averaging_and_normalize() -> None:
    model = _model()
    ds = TinyDataset(12, augment=False)
    loader = DataLoader(ds, batch_size=5)
    plain = _manual(model, ds)
    with torch.no_grad():
        flipped = model(ds.images.flip(3))
    want = (plain + flipped) / 2
    assert not torch.allclose(plain, want)  # the flip changes the features
    out = extract_features(model, loader, flip=True, progress=False)
    torch.testing.assert_close(out.feats, want, rtol=1e-5, atol=1e-6)
    normed = extract_features(model, loader, flip=True, normalize=True, progress=False)
    torch.testing.assert_close(normed.feats, nn.functional.normalize(want, dim=1))
    assert torch.allclose(normed.feats.norm(dim=1), torch.ones(12))


def test_progress_bar_reports_the_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from reid_pipeline.engine import progress as progress_module

    shown = io.StringIO()
    real = progress_module.make_progress

    def recording(*, enabled: bool):
        bar = real(enabled=enabled)
        bar.live.console = Console(file=shown, force_terminal=True, width=120)
        return bar

    monkeypatch.setattr(progress_module, "make_progress", recording)
    monkeypatch.setattr("reid_pipeline.engine.extract.make_progress", recording, raising=False)
    batches = [{"images": torch.randn(3, 3, 16, 8), "pids": torch.tensor([1, 2, 3])}] * 2
    extract_features(_model(), batches, progress=True)
    assert "2/2" in shown.getvalue()
    shown.truncate(0)
    extract_features(_model(), batches, progress=False)
    assert shown.getvalue().strip("\x00") == ""


def test_loader_without_camids_and_errors() -> None:
    model = _model()
    batches = [{"images": torch.randn(3, 3, 16, 8), "pids": torch.tensor([1, 2, 3])}]
    out = extract_features(model, batches, progress=False)
    assert out.camids.tolist() == [-1, -1, -1]
    assert out.modality.tolist() == [0, 0, 0]
    with pytest.raises(KeyError, match=r"extraction loader.*pids"):
        extract_features(model, [{"images": torch.randn(2, 3, 16, 8)}], progress=False)
    with pytest.raises(ValueError, match="no batch"):
        extract_features(model, [], progress=False)

    class Bad(nn.Module):
        def forward(self, images, modality=None):
            return images.mean(dim=(2, 3), keepdim=True)

    with pytest.raises(ValueError, match=r"Bad in eval mode must return Tensor\[B, feat_dim\]"):
        extract_features(Bad(), batches, progress=False)


def test_bf16_on_cpu_is_close() -> None:
    model = _model()
    loader = _loader(8, 4)
    ref = extract_features(model, loader, progress=False)
    low = extract_features(model, loader, precision="bf16", progress=False)
    assert low.feats.dtype == torch.float32
    torch.testing.assert_close(low.feats, ref.feats, rtol=0.05, atol=0.05)


def test_fp32_by_default_bf16_on_request() -> None:
    model = _model()
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(torch.is_autocast_enabled("cpu")))
    extract_features(model, _loader(6, 6), progress=False)
    extract_features(model, _loader(6, 6), precision="bf16", progress=False)
    assert seen == [False, True]


def test_memory_format_of_the_weights_is_left_as_found() -> None:
    model = _model()
    conv = model.backbone[0].weight
    before_ptr = conv.data_ptr()
    seen: list[bool] = []
    model.register_forward_pre_hook(
        lambda m, args: seen.append(conv.is_contiguous(memory_format=torch.channels_last))
    )
    loader = _loader(8, 4)
    ref = extract_features(model, loader, channels_last=False, progress=False)
    cl = extract_features(model, loader, channels_last=True, progress=False)
    assert seen == [False, False, True, True]  # converted for the extraction only...
    assert conv.is_contiguous()  # ...and given back: the same tensor as before
    assert conv.data_ptr() == before_ptr
    torch.testing.assert_close(cl.feats, ref.feats, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_extraction_matches_cpu() -> None:
    model = _model()
    loader = _loader(16, 8)
    ref = extract_features(model, loader, device="cpu", progress=False)
    gpu = extract_features(model, loader, device="cuda", precision="fp32", progress=False)
    assert gpu.feats.device.type == "cpu"
    torch.testing.assert_close(gpu.feats, ref.feats, rtol=1e-3, atol=1e-3)
    bf16 = extract_features(model, loader, device="cuda", precision="auto", progress=False)
    torch.testing.assert_close(bf16.feats, ref.feats, rtol=0.05, atol=0.05)
