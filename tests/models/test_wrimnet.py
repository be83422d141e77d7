"""WRIM-Net: output contract, modality routing, gradients, the MIIM budget, ablation switches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reid_pipeline.losses import build_criterion
from reid_pipeline.models import ReidOutput, create_model
from reid_pipeline.models.layers.miim import MIIM, ModalitySpecific
from reid_pipeline.models.wrimnet import WRIMNet

SIZE = (64, 32)


def _model(**kwargs: object) -> WRIMNet:
    torch.manual_seed(0)
    options: dict[str, object] = {"backbone": "resnet18", "input_size": SIZE, **kwargs}
    model = create_model("wrimnet", num_classes=3, **options)
    assert isinstance(model, WRIMNet)
    return model


def _batch(b: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(b, 3, *SIZE, generator=g)
    pids = torch.arange(b) // 2 % 3
    modality = torch.arange(b) % 2
    return images, pids, modality


def test_train_output_contract_resnet18() -> None:
    model = _model().train()
    images, pids, modality = _batch()
    out = model(images, pids, modality)
    assert isinstance(out, ReidOutput)
    assert [t.shape for t in out.logits] == [(6, 3), (6, 3)]
    assert [t.shape for t in out.feats] == [(6, 256), (6, 512)]  # layer 3, layer 4 (pre-BN)
    assert {k: tuple(v.shape) for k, v in out.extras.items()} == {
        "proj": (6, 128),
        "proj_aux": (6, 128),
    }
    # feats are the pooled stage maps the heads read: layer-4 feat -> its classifier
    neck = model.head4.neck
    torch.testing.assert_close(out.logits[1], neck.classifier(neck.bnneck(out.feats[1])))


def test_eval_embedding_and_concat_option() -> None:
    images, _, modality = _batch()
    model = _model().eval()
    with torch.no_grad():
        emb = model(images, modality=modality)
    assert emb.shape == (6, model.feat_dim) == (6, 512)
    concat = _model(test_concat_layer3=True).eval()
    with torch.no_grad():
        emb2 = concat(images, modality=modality)
    assert concat.feat_dim == 768
    assert emb2.shape == (6, 768)
    torch.testing.assert_close(emb2[:, :512], emb)  # same seed, same weights: layer 4 first


def test_all_parameters_receive_gradients_from_ce_and_cmkic() -> None:
    model = _model().train()
    images, pids, modality = _batch()
    criterion = build_criterion([{"name": "cmkic", "k": 1}])
    out = model(images, pids, modality)
    loss = criterion(out, pids, modality)[0] + sum(F.cross_entropy(lg, pids) for lg in out.logits)
    loss.backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert missing == []


@pytest.mark.parametrize("mod", [0, 1])
def test_single_modality_batch_leaves_other_modality_modules_without_gradient(mod: int) -> None:
    model = _model().train()
    images, pids, _ = _batch()
    out = model(images, pids, torch.full((6,), mod))
    (sum(lg.sum() for lg in out.logits) + out.extras["proj"].sum()).backward()
    for stage in (0, 1):
        routed = model.miims[stage]
        assert isinstance(routed, ModalitySpecific)
        other = routed.infrared if mod == 0 else routed.visible
        own = routed.visible if mod == 0 else routed.infrared
        assert all(p.grad is None or not p.grad.any() for p in other.parameters())
        assert all(p.grad is not None and p.grad.any() for p in own.parameters())
    for stage in (2, 3):  # shared
        assert isinstance(model.miims[stage], MIIM)
        assert model.miims[stage].compress.weight.grad is not None


@pytest.mark.slow
def test_training_steps_lower_the_loss() -> None:
    model = _model().train()
    images, pids, modality = _batch(8)
    criterion = build_criterion([{"name": "cmkic", "k": 1}])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(4):
        out = model(images, pids, modality)
        ce = sum(F.cross_entropy(lg, pids) for lg in out.logits)
        loss = criterion(out, pids, modality)[0] + ce
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_shared_stem_is_one_set_of_parameters_for_both_modalities() -> None:
    shared, specific = _model(stem="shared"), _model(stem="specific")
    assert not hasattr(shared.backbone, "stem_ir")
    assert hasattr(specific.backbone, "stem_ir")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    stem = sum(p.numel() for p in specific.backbone.stem_ir.parameters())
    assert n(specific) - n(shared) == stem == 64 * 3 * 7 * 7 + 2 * 64
    # the MIIMs of stages 1 and 2 stay modality-specific with either stem
    assert isinstance(shared.miims[0], ModalitySpecific)
    # shared: an image's embedding does not depend on the modality label beyond the MIIMs;
    # with the MIIMs off, the label changes nothing at all
    plain = _model(stem="shared", miim_stages=[], specific_stages=[]).eval()
    images, _, modality = _batch()
    with torch.no_grad():
        torch.testing.assert_close(
            plain(images, modality=modality), plain(images, modality=1 - modality)
        )
    two = _model(stem="specific", miim_stages=[], specific_stages=[]).eval()
    torch.nn.init.normal_(two.backbone.stem_ir[0].weight)  # the copies start equal
    with torch.no_grad():
        assert not torch.allclose(
            two(images, modality=modality), two(images, modality=1 - modality)
        )
    with pytest.raises(ValueError, match="stem must be one of"):
        _model(stem="two")


def test_ablation_switches() -> None:
    baseline = _model(miim_stages=(), specific_stages=(), aux_head=False)
    assert all(isinstance(m, torch.nn.Identity) for m in baseline.miims)
    images, pids, modality = _batch()
    out = baseline.train()(images, pids, modality)
    assert len(out.logits) == 1
    assert len(out.feats) == 1
    assert set(out.extras) == {"proj"}
    shared = _model(specific_stages=())
    assert not any(isinstance(m, ModalitySpecific) for m in shared.miims)
    full = _model()
    n = lambda m: sum(p.numel() for p in m.miims.parameters())  # noqa: E731
    specific_extra = sum(p.numel() for i in (0, 1) for p in full.miims[i].visible.parameters())
    assert n(full) == n(shared) + specific_extra
    only4 = _model(miim_stages=(4,), specific_stages=())
    assert [type(m).__name__ for m in only4.miims] == ["Identity"] * 3 + ["MIIM"]


def test_other_input_sizes_run_and_options_are_checked() -> None:
    model = _model(input_size=(384, 128)).eval()  # built for 384x128, fed 72x40 and 50x30
    for size in ((72, 40), (50, 30)):
        with torch.no_grad():
            emb = model(torch.randn(2, 3, *size), modality=torch.tensor([0, 1]))
        assert emb.shape == (2, 512)
    with pytest.raises(ValueError, match="specific_stages"):
        _model(specific_stages=(1, 2), miim_stages=(3, 4))
    with pytest.raises(ValueError, match="miim_stages"):
        _model(miim_stages=(0,))
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        WRIMNet(num_classes=0, backbone="resnet18")
    with pytest.raises(ValueError, match="proj_input"):
        _model(proj_input="bn")
    with pytest.raises(ValueError, match=r"model 'wrimnet'.*unexpected keyword"):
        create_model("wrimnet", num_classes=3, backbone="resnet18", non_local=True)
    with pytest.raises(ValueError, match="visible-infrared model: pass modality"):
        model(torch.randn(2, 3, *SIZE))
    with pytest.raises(ValueError, match=r"0 \(visible\) (and|or) 1 \(infrared\)"):
        model(torch.randn(2, 3, *SIZE), modality=torch.tensor([0, 3]))


@pytest.mark.slow
def test_resnet50_miim_budget_shapes_and_gradients() -> None:
    model = _model(backbone="resnet50", input_size=(384, 128))
    # both copies of the modality-specific MIIM1/MIIM2 + shared MIIM3/MIIM4 = the paper's 7.02M
    assert sum(p.numel() for p in model.miims.parameters()) == 7_023_104
    assert [(s.reduction, s.stride, s.tokens) for s in model.miim_specs] == [
        (2, 4, 192),
        (2, 2, 192),
        (4, 1, 192),
        (4, 1, 192),
    ]
    images, pids, modality = _batch(4)
    out = model.train()(images, pids, modality)
    assert [t.shape for t in out.feats] == [(4, 1024), (4, 2048)]
    assert out.extras["proj"].shape == (4, 128)
    (sum(lg.sum() for lg in out.logits) + out.extras["proj_aux"].sum()).backward()
    assert model.miims[0].visible.compress.weight.grad is not None
    assert model.backbone.layer1[0].conv1.weight.grad is not None
    assert model.eval().feat_dim == 2048


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_channels_last_training_step() -> None:
    model = _model().cuda().to(memory_format=torch.channels_last).train()
    images, pids, modality = (t.cuda() for t in _batch())
    images = images.contiguous(memory_format=torch.channels_last)
    criterion = build_criterion([{"name": "ce"}, {"name": "cmkic", "k": 1}])
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(images, pids, modality)
        loss, _ = criterion(out, pids, modality)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.miims[0].infrared.compress.weight.grad is not None
