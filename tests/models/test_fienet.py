"""FIENet: PFAM and MPIM against their definitions, the AGW baseline underneath, ablations."""

from __future__ import annotations

import re

import pytest
import torch

from reid_pipeline.losses import build_criterion
from reid_pipeline.models import ReidOutput, create_model
from reid_pipeline.models.fienet import FIENet
from reid_pipeline.models.layers.mpim import MPIM
from reid_pipeline.models.layers.pfam import PFAM

SIZE = (64, 32)


def _model(**kwargs: object) -> FIENet:
    torch.manual_seed(0)
    options: dict[str, object] = {"backbone": "resnet18", **kwargs}
    model = create_model("fienet", num_classes=3, **options)
    assert isinstance(model, FIENet)
    return model


def _batch(b: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(b, 3, *SIZE, generator=g)
    return images, torch.arange(b) // 2 % 3, torch.arange(b) % 2


# --- PFAM -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("last_stride", "grid4"), [(1, (5, 3)), (2, (3, 2))])
def test_pfam_shapes_on_odd_grids(last_stride: int, grid4: tuple[int, int]) -> None:
    torch.manual_seed(0)
    pfam = PFAM((8, 16, 32), last_stride=last_stride)
    torch.nn.init.ones_(pfam.out[1].weight)  # past the identity start
    x2 = torch.randn(2, 8, 9, 5, requires_grad=True)  # layer2 of a 66 x 34 input
    x3, x4 = torch.randn(2, 16, 5, 3), torch.randn(2, 32, *grid4)
    out = pfam(x2, x3, x4)
    assert out.shape == (2, 32, *grid4)
    out.sum().backward()
    assert x2.grad is not None
    assert x2.grad.abs().sum() > 0  # layer 2 reaches the output through a3


def test_pfam_starts_as_the_identity_on_layer4() -> None:
    torch.manual_seed(0)
    pfam = PFAM((8, 16, 32)).train()
    x2, x3, x4 = torch.randn(2, 8, 8, 4), torch.randn(2, 16, 4, 2), torch.randn(2, 32, 4, 2)
    torch.testing.assert_close(pfam(x2, x3, x4), x4, rtol=0, atol=0)
    assert pfam.inner_channels == 4  # C4 / 8


def test_pfam_sum_fusion_is_the_progressive_formula() -> None:
    torch.manual_seed(0)
    pfam = PFAM((8, 16, 32), fusion="sum", inner_channels=6).eval()
    torch.nn.init.normal_(pfam.out[1].weight)
    x2, x3, x4 = torch.randn(2, 8, 8, 4), torch.randn(2, 16, 4, 2), torch.randn(2, 32, 4, 2)
    a3 = pfam.proj3(x3) + pfam.down2(pfam.proj2(x2))
    a4 = pfam.proj4(x4) + pfam.down3(a3)
    assert a4.shape == (2, 6, 4, 2)
    torch.testing.assert_close(pfam(x2, x3, x4), x4 + pfam.out(a4))
    concat = PFAM((8, 16, 32), inner_channels=12)
    assert concat.fuse4.conv is not None
    assert concat.fuse4.conv[0].in_channels == 24
    assert concat(x2, x3, x4).shape == (2, 32, 4, 2)


def test_pfam_is_small_next_to_the_trunk() -> None:
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    pfam = PFAM((512, 1024, 2048))  # ResNet-50's widths
    assert n(pfam) == 2_891_264  # docs/models.md
    assert pfam.inner_channels == 256


def test_pfam_options_are_checked() -> None:
    with pytest.raises(ValueError, match="pfam_channels must be a positive int"):
        PFAM((8, 16, 32), inner_channels=0)
    with pytest.raises(ValueError, match="pfam_fusion must be one of"):
        PFAM((8, 16, 32), fusion="max")
    with pytest.raises(ValueError, match="pfam_groups = 3"):
        PFAM((8, 16, 32), groups=3)


# --- MPIM -------------------------------------------------------------------------------------


def test_mpim_matches_selective_kernel_definition() -> None:
    torch.manual_seed(0)
    mpim = MPIM(16, dilations=(1, 2, 3), groups=4, reduction=4, min_dim=2).eval()
    assert [b[0].dilation for b in mpim.branches] == [(1, 1), (2, 2), (3, 3)]
    x = torch.randn(2, 16, 7, 5)
    branches = [b(x) for b in mpim.branches]  # 3 x (B, C, H, W)
    desc = sum(branches).mean(dim=(2, 3))  # (B, C)
    logits = mpim.select(mpim.squeeze(desc)).view(2, 3, 16)
    w = torch.softmax(logits, dim=1)
    expected = x + sum(w[:, k, :, None, None] * branches[k] for k in range(3))
    torch.testing.assert_close(mpim(x), expected)
    weights = mpim.branch_weights(torch.stack(branches, dim=1))
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 16))
    mpim.residual = False
    torch.testing.assert_close(mpim(x), expected - x)


def test_mpim_options_are_checked() -> None:
    with pytest.raises(ValueError, match="mpim_groups = 32 must divide"):
        MPIM(48, groups=32)
    with pytest.raises(ValueError, match="mpim_dilations"):
        MPIM(32, dilations=(1, 0))


# --- FIENet -----------------------------------------------------------------------------------


def test_train_and_eval_contract_on_the_agw_trunk() -> None:
    model = _model()
    images, pids, modality = _batch()
    out = model.train()(images, pids, modality)
    assert isinstance(out, ReidOutput)
    assert [t.shape for t in out.logits] == [(6, 3)]
    assert [t.shape for t in out.feats] == [(6, 512)]
    # the AGW baseline underneath: non-local blocks after layer2 and layer3 (capped on resnet18)
    assert model.non_local.counts == (0, 2, 2, 0)
    assert model.backbone.stem_ir is not None
    with torch.no_grad():
        emb = model.eval()(images, modality=modality)
    assert emb.shape == (6, model.feat_dim) == (6, 512)


def test_both_modules_off_is_exactly_the_cross_modality_agw() -> None:
    torch.manual_seed(0)
    agw = create_model("agw", num_classes=3, backbone="resnet18", cross_modality=True)
    fienet = _model(use_pfam=False, use_mpim=False)
    fienet.load_state_dict(agw.state_dict(), strict=True)  # same parameter names, nothing else
    images, _, modality = _batch()
    with torch.no_grad():
        torch.testing.assert_close(
            fienet.eval()(images, modality=modality), agw.eval()(images, modality=modality)
        )


def test_fienet_objective_reaches_every_parameter() -> None:
    model = _model().train()
    images, pids, modality = _batch(8)
    criterion = build_criterion(
        [{"name": "ce"}, {"name": "wrt"}, {"name": "igcl", "lam": 1.0, "rho": 0.5}]
    )
    out = model(images, pids, modality)
    total, parts = criterion(out, pids, modality)
    assert set(parts) == {"ce", "wrt", "igcl"}
    assert parts["igcl"].item() > 0
    total.backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    # a fresh non-local block and a fresh PFAM are the identity (their output BN scale is 0), so
    # only that BN learns at the first step; everything else must receive a gradient
    frozen_at_init = re.compile(
        r"non_local\.blocks\.layer\d\.\d\.(theta|phi|g|out_proj\.0)\.|pfam\.(?!out\.1\.)"
    )
    assert [n for n in missing if not frozen_at_init.match(n)] == []
    assert model.pfam is not None
    assert model.pfam.out[1].weight.grad.abs().sum() > 0
    nl_bn = model.non_local.blocks["layer3"][0].out_proj[1].weight
    assert nl_bn.grad is not None
    assert nl_bn.grad.abs().sum() > 0


def test_visible_only_batch_leaves_the_infrared_stem_untouched() -> None:
    model = _model().train()
    images, pids, _ = _batch()
    out = model(images, pids, torch.zeros(6, dtype=torch.long))
    out.logits[0].sum().backward()
    assert all(p.grad is None for p in model.backbone.stem_ir.parameters())
    assert model.backbone.stem[0].weight.grad is not None


def test_ablation_switches_and_widths() -> None:
    no_pfam = _model(use_pfam=False)
    assert no_pfam.pfam is None
    assert no_pfam.mpim is not None
    assert no_pfam.mpim.channels == 512
    no_mpim = _model(use_mpim=False)
    assert no_mpim.mpim is None
    assert no_mpim.pfam is not None
    narrow = _model(pfam_channels=32, mpim_groups=16)
    assert narrow.pfam.inner_channels == 32
    assert narrow.feat_dim == 512  # PFAM keeps layer 4's width
    images, pids, modality = _batch()
    out = narrow.train()(images, pids, modality)
    assert out.feats[0].shape == (6, 512)
    summed = _model(pfam_fusion="sum", mpim_dilations=(1, 2))
    assert len(summed.mpim.branches) == 2
    assert summed.pfam.fuse4.conv is None
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(summed) < n(_model())


def test_options_and_inputs_are_checked() -> None:
    model = _model(use_mpim=False)
    with pytest.raises(ValueError, match="visible-infrared model: pass modality"):
        model(torch.randn(2, 3, *SIZE))
    with pytest.raises(ValueError, match=r"0 \(visible\) (and|or) 1 \(infrared\)"):
        model(torch.randn(2, 3, *SIZE), modality=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"model 'fienet'.*unexpected keyword"):
        create_model("fienet", num_classes=3, backbone="resnet18", use_miim=True)
    with pytest.raises(ValueError, match="use_pfam must be true or false"):
        _model(use_pfam="yes")


@pytest.mark.slow
def test_resnet50_shapes_and_gradients() -> None:
    model = _model(backbone="resnet50")
    assert model.non_local.counts == (0, 2, 3, 0)
    images, pids, modality = _batch(4)
    out = model.train()(images, pids, modality)
    assert out.feats[0].shape == (4, 2048)
    out.logits[0].sum().backward()
    assert model.pfam is not None
    assert model.pfam.down2[0].weight.grad is not None
    assert model.backbone.layer2[0].conv1.weight.grad is not None
    assert model.eval().feat_dim == 2048


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_channels_last_training_step() -> None:
    model = _model().cuda().to(memory_format=torch.channels_last).train()
    images, pids, modality = (t.cuda() for t in _batch())
    images = images.contiguous(memory_format=torch.channels_last)
    criterion = build_criterion([{"name": "ce"}, {"name": "wrt"}, {"name": "igcl"}])
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(images, pids, modality)
        loss, _ = criterion(out, pids, modality)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.mpim is not None
    assert model.mpim.select.weight.grad is not None
