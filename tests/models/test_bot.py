"""BoT baseline: forward contract, head maths, options, weights files, parameter count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

from reid_pipeline.models import ReidOutput, create_model
from reid_pipeline.models.bot import BoT
from reid_pipeline.models.layers.backbone import TwoStreamResNet


def _images(b: int = 4) -> torch.Tensor:
    return torch.randn(b, 3, 64, 32)


def test_registered_and_built_through_create_model() -> None:
    model = create_model("bot", num_classes=6, backbone="resnet18")
    assert isinstance(model, BoT)
    assert model.feat_dim == 512
    assert model.num_classes == 6
    assert model.cross_modality is False


def test_train_output_is_gap_feature_and_bnneck_logits() -> None:
    model = BoT(num_classes=6, backbone="resnet18").train()
    x, pids = _images(), torch.tensor([0, 0, 1, 1])
    out = model(x, targets=pids)
    assert isinstance(out, ReidOutput)
    assert len(out.logits) == 1
    assert len(out.feats) == 1
    assert out.logits[0].shape == (4, 6)
    assert out.feats[0].shape == (4, 512)
    assert out.extras == {}
    # reproduce the head by hand: GAP -> BN (batch statistics in train mode) -> Linear
    with torch.no_grad():
        fmap = model.backbone(x)
        assert fmap.shape == (4, 512, 4, 2)  # last stride 1: 64/16 x 32/16
        feat = fmap.mean(dim=(2, 3))
        bn = model.head.neck.bnneck
        bn_feat = (feat - feat.mean(0)) / torch.sqrt(feat.var(0, unbiased=False) + bn.eps)
        logits = bn_feat @ model.head.neck.classifier.weight.T
    torch.testing.assert_close(out.feats[0], feat, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.logits[0], logits, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("neck_feat", ["after", "before"])
def test_eval_embedding_is_the_chosen_neck_feature(neck_feat: str) -> None:
    model = BoT(num_classes=6, backbone="resnet18", neck_feat=neck_feat)
    model.train()
    model(_images(8))  # move the BN running statistics away from (0, 1)
    model.eval()
    x = _images(3)
    with torch.no_grad():
        emb = model(x)
        feat = model.backbone(x).mean(dim=(2, 3))
        bn_feat = model.head.neck.bnneck(feat)
    assert emb.shape == (3, model.feat_dim)
    torch.testing.assert_close(emb, bn_feat if neck_feat == "after" else feat)
    # normalisation is the evaluation's job: the embedding is returned raw
    assert not torch.allclose(emb.norm(dim=1), torch.ones(3))


def test_single_modality_model_ignores_modality() -> None:
    model = BoT(num_classes=3, backbone="resnet18").eval()
    x = _images(2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x, modality=torch.tensor([0, 1])))
    with pytest.raises(ValueError, match=r"modality must have shape \(2,\)"):
        model(x, modality=torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"images of shape \(B, 3, H, W\)"):
        model(torch.randn(2, 1, 64, 32))


def test_parameter_names_match_the_optimiser_groups_and_bias_is_frozen() -> None:
    model = BoT(num_classes=5, backbone="resnet18")
    names = dict(model.named_parameters())
    head = {n for n in names if not n.startswith("backbone.")}
    assert head == {
        "head.neck.bnneck.weight",
        "head.neck.bnneck.bias",
        "head.neck.classifier.weight",
    }
    assert not names["head.neck.bnneck.bias"].requires_grad
    out = model.train()(_images(4), targets=torch.tensor([0, 1, 2, 3]))
    loss = F.cross_entropy(out.logits[0], torch.tensor([0, 1, 2, 3])) + out.feats[0].mean()
    loss.backward()
    assert names["backbone.layer1.0.conv1.weight"].grad.abs().sum() > 0
    assert names["backbone.stem.0.weight"].grad.abs().sum() > 0
    assert names["head.neck.bnneck.bias"].grad is None


def test_cross_modality_variant_uses_two_stems() -> None:
    model = create_model("bot", num_classes=4, backbone="resnet18", cross_modality=True).eval()
    assert isinstance(model.backbone, TwoStreamResNet)
    assert model.cross_modality is True
    x = _images(4)
    with pytest.raises(ValueError, match="visible-infrared model: pass modality"):
        model(x)
    modality = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        before = model(x, modality=modality)
        for p in model.backbone.stem_ir.parameters():
            p.mul_(1.5)
        after = model(x, modality=modality)
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])  # visible rows untouched
    assert not torch.allclose(after[[1, 3]], before[[1, 3]])  # IR rows went through stem_ir
    assert any(n.startswith("backbone.stem_ir.") for n, _ in model.named_parameters())


def test_pretrained_path_loads_the_trunk(tmp_path) -> None:
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path / "trunk.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = create_model("bot", num_classes=3, backbone="resnet18", pretrained=str(path))
    torch.testing.assert_close(model.backbone.stem[0].weight, state["conv1.weight"])
    torch.testing.assert_close(model.backbone.layer4[1].bn2.weight, state["layer4.1.bn2.weight"])


def test_bad_options_give_one_clear_error() -> None:
    with pytest.raises(ValueError, match="neck_feat must be one of"):
        BoT(num_classes=3, backbone="resnet18", neck_feat="middle")
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        BoT(num_classes=0, backbone="resnet18")
    with pytest.raises(ValueError, match="cross_modality must be true or false"):
        BoT(num_classes=3, backbone="resnet18", cross_modality="yes")
    with pytest.raises(ValueError, match=r"model 'bot'.*neck"):
        create_model("bot", num_classes=3, backbone="resnet18", neck="bnneck")
    with pytest.raises(ValueError, match="pool must be one of"):
        BoT(num_classes=3, backbone="resnet18", pool="mean")


def test_resnet50_parameter_count_with_751_classes() -> None:
    model = BoT(num_classes=751)
    total = sum(p.numel() for p in model.parameters())
    trunk = sum(p.numel() for n, p in model.named_parameters() if n.startswith("backbone."))
    # torchvision ResNet-50 without fc (23,508,032) + BNNeck 2 x 2048 + classifier 2048 x 751;
    # the "25.6M" often quoted is ResNet-50 *with* its 1000-way ImageNet fc (25,557,032).
    assert trunk == 23_508_032
    assert total == 23_508_032 + 2 * 2048 + 2048 * 751 == 25_050_176
    assert model.feat_dim == 2048


def test_stem_pool_fastreid_is_fastreids_pool_with_the_same_weights() -> None:
    tv = create_model("bot", num_classes=3, backbone="resnet18")
    fr = create_model("bot", num_classes=3, backbone="resnet18", stem_pool="fastreid")
    fr.load_state_dict(tv.state_dict())  # parameter-free: the same state dict fits both
    pool = fr.backbone.stem[3]
    assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == (3, 2, 0, True)
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        a, b = tv.backbone.stem(x), fr.backbone.stem(x)
        assert a.shape == b.shape == (2, 64, 64, 32)
        assert not torch.allclose(a, b)  # the windows are shifted by one pixel
        pre = fr.backbone.stem[:3](x)  # conv1, bn1, relu: shared by both layouts
        torch.testing.assert_close(b, F.max_pool2d(pre, 3, 2, padding=0, ceil_mode=True))
        torch.testing.assert_close(a, F.max_pool2d(pre, 3, 2, padding=1))


def test_stem_pool_refuses_an_unknown_layout() -> None:
    with pytest.raises(ValueError, match="stem_pool must be one of"):
        create_model("bot", num_classes=3, backbone="resnet18", stem_pool="caffe")
