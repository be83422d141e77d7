"""Shared building blocks: ResNet trunks (last stride, two-stream routing, weights files), BNNeck,
GeM, the non-local block and its placement, the pooling head."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from reid_pipeline.models.layers.backbone import (
    ResNetBackbone,
    TwoStreamResNet,
    build_backbone,
    load_state_dict_file,
)
from reid_pipeline.models.layers.bnneck import BNNeck
from reid_pipeline.models.layers.gem import GeM
from reid_pipeline.models.layers.head import ReidHead
from reid_pipeline.models.layers.non_local import (
    NonLocalBlock,
    NonLocalStages,
    non_local_positions,
)

# ----------------------------------------------------------------------------- trunk


@pytest.mark.parametrize(("last_stride", "grid"), [(1, (8, 4)), (2, (4, 2))])
def test_last_stride_sets_layer4_map_size(last_stride: int, grid: tuple[int, int]) -> None:
    net = ResNetBackbone("resnet18", last_stride=last_stride).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 128, 64))
    assert out.shape == (2, 512, *grid)
    assert net.out_channels == (64, 128, 256, 512)


def test_bottleneck_last_stride_one_keeps_layer3_grid() -> None:
    net = ResNetBackbone("resnet50", last_stride=1).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 32))
    assert out.shape == (1, 2048, 4, 2)  # 64/16 x 32/16


def test_bad_backbone_options_are_named() -> None:
    with pytest.raises(ValueError, match="last_stride"):
        ResNetBackbone("resnet18", last_stride=3)
    with pytest.raises(ValueError, match="unknown backbone 'resnet7'"):
        ResNetBackbone("resnet7")
    with pytest.raises(ValueError, match="pretrained must be False"):
        ResNetBackbone("resnet18", pretrained=True)


def test_two_stream_routes_each_sample_through_its_stem() -> None:
    net = TwoStreamResNet("resnet18").eval()
    with torch.no_grad():
        for p in net.stem_ir.parameters():  # make the IR stem differ from the visible one
            p.add_(torch.randn_like(p) * 0.5)
    assert net.stem_ir[0].weight is not net.stem[0].weight
    x = torch.randn(4, 3, 64, 32)
    modality = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        mixed = net(x, modality)
        all_vis = net(x, torch.zeros(4, dtype=torch.long))
        all_ir = net(x, torch.ones(4, dtype=torch.long))
    torch.testing.assert_close(mixed[[0, 3]], all_vis[[0, 3]])
    torch.testing.assert_close(mixed[[1, 2]], all_ir[[1, 2]])
    assert not torch.allclose(all_vis, all_ir)  # the stems really differ
    with pytest.raises(ValueError, match="modality"):
        net(x)


def test_two_stream_stems_start_from_the_same_weights_and_share_layers() -> None:
    net = build_backbone("resnet18", two_stream=True)
    assert isinstance(net, TwoStreamResNet)
    torch.testing.assert_close(net.stem[0].weight, net.stem_ir[0].weight)
    names = [n for n, _ in net.named_parameters()]
    assert "stem_ir.0.weight" in names
    assert not any(n.startswith("layer1_ir") for n in names)  # layer1-4 are shared


# ----------------------------------------------------------------------------- weights files


def _resnet18_state(seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return torchvision.models.resnet18().state_dict()


def test_pretrained_safetensors_file_is_loaded(tmp_path) -> None:
    state = _resnet18_state()
    path = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    net = ResNetBackbone("resnet18", pretrained=path)
    torch.testing.assert_close(net.stem[0].weight, state["conv1.weight"])
    torch.testing.assert_close(net.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    torch.testing.assert_close(net.layer4[0].bn1.running_mean, state["layer4.0.bn1.running_mean"])


def test_pretrained_weights_only_torch_checkpoint_is_unwrapped(tmp_path) -> None:
    state = _resnet18_state(seed=2)
    wrapped = {"state_dict": {f"module.backbone.{k}": v for k, v in state.items()}, "epoch": 3}
    path = tmp_path / "ckpt.pth"
    torch.save(wrapped, path)
    net = build_backbone("resnet18", pretrained=str(path), two_stream=True)
    torch.testing.assert_close(
        net.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"]
    )
    torch.testing.assert_close(net.stem_ir[0].weight, state["conv1.weight"])  # both stems loaded


class _RunsCode:
    """Unpickling this calls a function (a harmless one): what weights_only must refuse."""

    def __reduce__(self) -> tuple:
        return (os.getcwd, ())


def test_weights_file_that_could_run_code_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    with path.open("wb") as fh:
        pickle.dump({"conv1.weight": _RunsCode()}, fh, protocol=2)
    with pytest.raises(ValueError, match=r"evil\.pt.*weights_only=True"):
        ResNetBackbone("resnet18", pretrained=path)


def test_missing_or_foreign_weights_file_gives_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
        ResNetBackbone("resnet18", pretrained=tmp_path / "nope.safetensors")
    path = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(ValueError, match=r"other\.safetensors has no key of a resnet18"):
        ResNetBackbone("resnet18", pretrained=path)
    partial = {k: v for k, v in _resnet18_state().items() if not k.startswith("layer4.")}
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    with pytest.raises(ValueError, match=r"partial\.pth lacks \d+ resnet18 keys"):
        ResNetBackbone("resnet18", pretrained=path)


def test_weights_file_of_another_architecture_gives_one_clear_error(tmp_path) -> None:
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(ValueError, match=r"r50\.pth.*resnet18"):
        ResNetBackbone("resnet18", pretrained=path)


def test_load_state_dict_file_rejects_non_tensor_values(tmp_path) -> None:
    path = tmp_path / "meta.pth"
    torch.save({"lr": 0.1, "epoch": 3}, path)
    with pytest.raises(ValueError, match=r"meta\.pth does not hold a state dict of tensors"):
        load_state_dict_file(path)


# ----------------------------------------------------------------------------- BNNeck / GeM


def test_bnneck_bias_is_frozen_and_classifier_has_no_bias() -> None:
    neck = BNNeck(16, num_classes=5)
    assert not neck.bnneck.bias.requires_grad
    assert neck.classifier.bias is None
    torch.testing.assert_close(neck.bnneck.weight, torch.ones(16))
    assert neck.classifier.weight.std().item() == pytest.approx(0.001, rel=0.3)
    opt = torch.optim.SGD([p for p in neck.parameters() if p.requires_grad], lr=1.0)
    feat = torch.randn(8, 16) + 3.0
    bn_feat, logits = neck(feat)
    assert bn_feat.shape == (8, 16)
    assert logits.shape == (8, 5)
    (logits.square().sum() + bn_feat.sum()).backward()
    opt.step()
    torch.testing.assert_close(neck.bnneck.bias, torch.zeros(16))  # still zero: no shift
    assert not torch.allclose(neck.bnneck.weight, torch.ones(16))  # the scale did learn
    # train mode normalises with the batch statistics: zero mean per channel, no shift
    torch.testing.assert_close(bn_feat.mean(0), torch.zeros(16), atol=1e-5, rtol=0)


def test_bnneck_without_classes_has_no_classifier() -> None:
    bn_feat, logits = BNNeck(8, num_classes=0)(torch.randn(4, 8))
    assert logits is None
    assert bn_feat.shape == (4, 8)


def test_gem_p1_is_average_pooling_and_large_p_approaches_max() -> None:
    x = torch.rand(3, 7, 5, 4) + 0.01
    torch.testing.assert_close(GeM(p=1.0)(x), x.mean(dim=(2, 3)))
    assert torch.allclose(GeM(p=200.0)(x), x.amax(dim=(2, 3)), rtol=0.05)
    p3 = GeM(p=3.0)(x)
    torch.testing.assert_close(p3, x.pow(3).mean(dim=(2, 3)).pow(1 / 3))
    assert bool((p3 >= x.mean(dim=(2, 3)) - 1e-6).all())  # power mean inequality


def test_gem_learnable_p_and_bad_p() -> None:
    gem = GeM(p=3.0, learn_p=True)
    gem(torch.rand(2, 4, 3, 3) + 0.1).sum().backward()
    assert gem.p.grad is not None
    assert gem.p.grad.abs().item() > 0
    assert not GeM(p=3.0).p.requires_grad
    with pytest.raises(ValueError, match="GeM p must be > 0"):
        GeM(p=0.0)


def test_gem_is_computed_in_fp32_under_bf16() -> None:
    x = (torch.rand(2, 4, 3, 3) * 50).bfloat16()
    out = GeM(p=3.0)(x)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


# ----------------------------------------------------------------------------- head


@pytest.mark.parametrize("pool", ["avg", "max", "gem"])
def test_reid_head_returns_pre_and_post_bn_features(pool: str) -> None:
    head = ReidHead(32, 7, pool=pool).eval()
    x = torch.rand(3, 32, 4, 2)
    out = head(x)
    expected = {"avg": x.mean((2, 3)), "max": x.amax((2, 3)), "gem": GeM(3.0)(x)}[pool]
    torch.testing.assert_close(out.feat, expected)
    bn = head.neck.bnneck  # eval: running stats (0, 1) at init -> bn_feat = feat / sqrt(1 + eps)
    torch.testing.assert_close(out.bn_feat, expected / (1 + bn.eps) ** 0.5)
    assert out.logits.shape == (3, 7)
    names = [n for n, _ in head.named_parameters()]
    assert "neck.bnneck.weight" in names
    assert "neck.classifier.weight" in names


def test_reid_head_rejects_unknown_pool() -> None:
    with pytest.raises(ValueError, match="pool must be one of"):
        ReidHead(8, 2, pool="median")


# ----------------------------------------------------------------------------- non-local


def _reference_non_local(block: NonLocalBlock, x: torch.Tensor) -> torch.Tensor:
    """Direct transcription of Wang et al.'s equations, position by position."""
    b, _, h, w = x.shape
    theta = block.theta(x).reshape(b, -1, h * w)
    phi = block.phi(x).reshape(b, -1, h * w)
    g = block.g(x).reshape(b, -1, h * w)
    y = torch.zeros_like(g)
    for n in range(b):
        for i in range(h * w):
            f = (theta[n, :, i : i + 1] * phi[n]).sum(0)  # f(x_i, x_j) for all j
            weights = torch.softmax(f, 0) if block.mode == "embedded_gaussian" else f / (h * w)
            y[n, :, i] = (g[n] * weights).sum(1)
    return x + block.out_proj(y.reshape(b, -1, h, w))


@pytest.mark.parametrize(
    ("mode", "hw"),
    [("dot_product", (3, 2)), ("dot_product", (6, 5)), ("embedded_gaussian", (4, 3))],
)
def test_non_local_matches_the_paper_equations(mode: str, hw: tuple[int, int]) -> None:
    # (3, 2): N = 6 <= C' = 8 and (6, 5): N = 30 > C' exercise both multiplication orders
    block = NonLocalBlock(16, reduction=2, mode=mode).eval()
    nn.init.normal_(block.out_proj[1].weight)  # leave the identity initialisation
    x = torch.randn(2, 16, *hw, dtype=torch.float64)
    block = block.double()
    out = block(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, _reference_non_local(block, x))
    assert not torch.allclose(out, x)


def test_non_local_starts_as_identity_and_learns() -> None:
    block = NonLocalBlock(8)
    assert block.inter_channels == 4
    x = torch.randn(2, 8, 4, 3)
    torch.testing.assert_close(block(x), x)  # zero-initialised BN on W
    block(x).square().sum().backward()
    assert block.out_proj[1].weight.grad.abs().sum() > 0  # the gate opens through BN's scale
    assert torch.equal(block.out_proj[1].bias, torch.zeros(8))


def test_non_local_inter_channels_and_bad_options() -> None:
    assert NonLocalBlock(512, reduction=4).inter_channels == 128
    released = NonLocalBlock(512, inter_channels=1)  # what the released AGW code builds
    assert released.theta.out_channels == 1
    assert released.out_proj[0].in_channels == 1
    with pytest.raises(ValueError, match="non-local mode"):
        NonLocalBlock(8, mode="gaussian_concat")
    with pytest.raises(ValueError, match="reduction"):
        NonLocalBlock(8, reduction=16)
    with pytest.raises(ValueError, match="inter_channels"):
        NonLocalBlock(8, inter_channels=0)


def test_non_local_positions_follow_agw() -> None:
    # ResNet-50 depths (3, 4, 6, 3): AGW puts blocks after layer2 blocks 2, 3 and layer3 blocks 3-5
    assert non_local_positions((0, 2, 3, 0), (3, 4, 6, 3)) == [[], [2, 3], [3, 4, 5], []]
    assert non_local_positions((1, 0, 0, 2), (2, 2, 2, 2)) == [[1], [], [], [0, 1]]
    with pytest.raises(ValueError, match=r"non_local\[2\] \(layer3\).*\[0, 2\]"):
        non_local_positions((0, 2, 3, 0), (2, 2, 2, 2))
    with pytest.raises(ValueError, match="one count per ResNet stage"):
        non_local_positions((0, 2, 3), (3, 4, 6, 3))


def test_non_local_stages_run_after_the_right_blocks() -> None:
    backbone = ResNetBackbone("resnet50").eval()
    stages = NonLocalStages.for_backbone(backbone, (0, 2, 3, 0)).eval()
    assert [len(stages.blocks[k]) for k in ("layer2", "layer3")] == [2, 3]
    assert "layer1" not in stages.blocks
    assert stages.blocks["layer3"][0].in_channels == 1024
    calls: list[str] = []
    for i, block in enumerate(backbone.layer2):
        block.register_forward_hook(lambda *_, i=i: calls.append(f"layer2.{i}"))
    for i, block in enumerate(backbone.layer3):
        block.register_forward_hook(lambda *_, i=i: calls.append(f"layer3.{i}"))
    for key, blocks in stages.blocks.items():
        for i, block in enumerate(blocks):
            block.register_forward_hook(lambda *_, k=key, i=i: calls.append(f"nl.{k}.{i}"))
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        outs = stages(backbone, x)
    assert calls == [
        "layer2.0", "layer2.1", "layer2.2", "nl.layer2.0", "layer2.3", "nl.layer2.1",
        "layer3.0", "layer3.1", "layer3.2", "layer3.3", "nl.layer3.0",
        "layer3.4", "nl.layer3.1", "layer3.5", "nl.layer3.2",
    ]  # fmt: skip
    assert [o.shape[1] for o in outs] == [256, 512, 1024, 2048]
    with torch.no_grad():  # identity-initialised blocks leave the pretrained trunk unchanged
        torch.testing.assert_close(outs[-1], backbone(x))
