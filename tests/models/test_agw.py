"""AGW baseline: non-local placement, GeM, the two-stream variant, options, parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reid_pipeline.models import ReidOutput, create_model
from reid_pipeline.models.agw import AGW
from reid_pipeline.models.bot import BoT
from reid_pipeline.models.layers.backbone import TwoStreamResNet
from reid_pipeline.models.layers.gem import GeM
from reid_pipeline.models.layers.non_local import NonLocalBlock


def _n_params(module: torch.nn.Module, prefix: str = "") -> int:
    return sum(p.numel() for n, p in module.named_parameters() if n.startswith(prefix))


def test_registered_with_agw_defaults() -> None:
    model = create_model("agw", num_classes=5, backbone="resnet18")
    assert isinstance(model, AGW)
    assert model.feat_dim == 512
    assert isinstance(model.head.pool, GeM)
    assert model.head.pool.p.item() == 3.0
    assert model.head.pool.p.requires_grad  # the single-modality official code learns p
    # resnet18 has 2 blocks per stage: AGW's (0, 2, 3, 0) is capped to (0, 2, 2, 0)
    assert model.non_local.counts == (0, 2, 2, 0)
    assert model.non_local.positions == [[], [0, 1], [0, 1], []]
    block = model.non_local.blocks["layer3"][0]
    assert isinstance(block, NonLocalBlock)
    assert (block.in_channels, block.inter_channels, block.mode) == (256, 128, "dot_product")


def test_resnet50_placement_and_parameter_counts() -> None:
    model = AGW(num_classes=751)
    assert model.non_local.positions == [[], [2, 3], [3, 4, 5], []]
    # Non_local(512): 3 x (512*256 + 256) + (256*512 + 512) + 2*512 = 526,592 (x2)
    # Non_local(1024): 3 x (1024*512 + 512) + (512*1024 + 1024) + 2*1024 = 2,101,760 (x3)
    assert _n_params(model, "non_local.") == 2 * 526_592 + 3 * 2_101_760 == 7_358_464
    assert _n_params(model, "backbone.") == 23_508_032
    # + BNNeck 2*2048 + classifier 2048*751 + GeM p
    assert _n_params(model) == 23_508_032 + 7_358_464 + 4096 + 2048 * 751 + 1 == 32_408_641
    released = AGW(num_classes=751, non_local_inter_channels=1)  # the released code's width
    assert _n_params(released, "non_local.") == 2 * (3 * 513 + 512 + 512 + 1024) + 3 * (
        3 * 1025 + 1024 + 1024 + 2048
    )


@pytest.mark.parametrize("cross_modality", [False, True])
def test_released_non_local_width_has_one_inner_channel(cross_modality: bool) -> None:
    model = AGW(
        num_classes=3,
        backbone="resnet18",
        cross_modality=cross_modality,
        non_local_width="released",
    )
    blocks = [b for stage in model.non_local.blocks.values() for b in stage]
    assert len(blocks) == 4  # (0, 2, 2, 0) on resnet18
    for block in blocks:
        assert block.inter_channels == 1
        assert (block.theta.out_channels, block.phi.out_channels, block.g.out_channels) == (1, 1, 1)
        assert block.out_proj[0].in_channels == 1
    same = AGW(num_classes=3, backbone="resnet18", non_local_inter_channels=1)
    assert [tuple(p.shape) for p in model.non_local.parameters()] == [
        tuple(p.shape) for p in same.non_local.parameters()
    ]
    corrected = AGW(num_classes=3, backbone="resnet18", non_local_width="corrected")
    assert corrected.non_local.blocks["layer2"][0].inter_channels == 64  # C // 2
    with pytest.raises(ValueError, match="non_local_width='released' builds 1 inner channel"):
        AGW(num_classes=3, backbone="resnet18", non_local_width="released",
            non_local_inter_channels=4)  # fmt: skip
    with pytest.raises(ValueError, match="non_local_width must be one of"):
        AGW(num_classes=3, backbone="resnet18", non_local_width="official")


def test_cross_modality_resnet50_parameter_count_with_395_classes() -> None:
    model = AGW(num_classes=395, cross_modality=True)
    assert isinstance(model.backbone, TwoStreamResNet)
    # second stem: conv1 64*3*7*7 + bn1 2*64 = 9,536
    assert _n_params(model, "backbone.") == 23_508_032 + 9_536
    assert _n_params(model) == 23_517_568 + 7_358_464 + 4096 + 2048 * 395 + 1 == 31_689_089
    assert not model.head.pool.p.requires_grad  # fixed p = 3 in the cross-modality code


def test_identity_initialised_non_local_makes_agw_equal_to_bot_with_gem() -> None:
    agw = AGW(num_classes=4, backbone="resnet18").eval()
    bot = BoT(num_classes=4, backbone="resnet18", pool="gem").eval()
    result = bot.load_state_dict(agw.state_dict(), strict=False)
    assert result.missing_keys == []
    assert all(k.startswith("non_local.") for k in result.unexpected_keys)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(agw(x), bot(x))
        for block in agw.non_local.blocks["layer3"]:  # open one gate: the outputs now differ
            torch.nn.init.normal_(block.out_proj[1].weight)
        assert not torch.allclose(agw(x), bot(x))


def test_forward_stages_and_train_output() -> None:
    model = AGW(num_classes=6, backbone="resnet18").train()
    x = torch.randn(4, 3, 64, 32)
    stages = model.forward_stages(x)
    assert [tuple(s.shape) for s in stages] == [
        (4, 64, 16, 8),
        (4, 128, 8, 4),
        (4, 256, 4, 2),
        (4, 512, 4, 2),
    ]
    out = model(x, targets=torch.tensor([0, 0, 1, 1]))
    assert isinstance(out, ReidOutput)
    assert out.logits[0].shape == (4, 6)
    assert out.feats[0].shape == (4, 512)
    torch.testing.assert_close(out.feats[0], GeM(3.0)(stages[-1]), rtol=1e-4, atol=1e-5)


def test_cross_modality_forward_routes_and_trains() -> None:
    model = create_model("agw", num_classes=4, backbone="resnet18", cross_modality=True)
    assert model.cross_modality is True
    x = torch.randn(8, 3, 32, 16)
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    modality = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="pass modality"):
        model.eval()(x)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    losses = []
    for _ in range(4):  # a few steps on one batch: the identity loss must go down
        out = model(x, targets=pids, modality=modality)
        loss = F.cross_entropy(out.logits[0], pids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert model.backbone.stem_ir[0].weight.grad.abs().sum() > 0
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0
    assert model.non_local.blocks["layer2"][0].out_proj[1].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        emb = model(x, modality=modality)
    assert emb.shape == (8, 512)
    assert torch.isfinite(emb).all()


def test_options() -> None:
    off = AGW(num_classes=3, backbone="resnet18", non_local=[0, 0, 0, 0])
    assert _n_params(off, "non_local.") == 0
    four = AGW(num_classes=3, backbone="resnet18", non_local=(1, 0, 0, 2))
    assert four.non_local.positions == [[1], [], [], [0, 1]]
    emb = AGW(num_classes=3, backbone="resnet18", non_local_mode="embedded_gaussian")
    assert emb.non_local.blocks["layer2"][0].mode == "embedded_gaussian"
    emb.eval()
    with torch.no_grad():
        assert emb(torch.randn(2, 3, 64, 32)).shape == (2, 512)
    assert AGW(num_classes=3, backbone="resnet18", gem_learn_p=False).head.pool.p.grad is None
    assert not AGW(num_classes=3, backbone="resnet18", gem_learn_p=False).head.pool.p.requires_grad
    avg = AGW(num_classes=3, backbone="resnet18", pool="avg", non_local_reduction=4)
    assert not isinstance(avg.head.pool, GeM)
    assert avg.non_local.blocks["layer2"][0].inter_channels == 32


def test_bad_options_give_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"non_local\[2\] \(layer3\) must be an int in \[0, 2\]"):
        AGW(num_classes=3, backbone="resnet18", non_local=[0, 2, 3, 0])
    with pytest.raises(ValueError, match="non_local must be a list of 4"):
        AGW(num_classes=3, backbone="resnet18", non_local="0,2,3,0")
    with pytest.raises(ValueError, match="one count per ResNet stage"):
        AGW(num_classes=3, backbone="resnet18", non_local=[2, 3])
    with pytest.raises(ValueError, match="non_local_mode must be one of"):
        AGW(num_classes=3, backbone="resnet18", non_local_mode="softmax")
    with pytest.raises(ValueError, match="reduction"):
        AGW(num_classes=3, backbone="resnet18", non_local_reduction=0)
    with pytest.raises(ValueError, match="neck_feat"):
        AGW(num_classes=3, backbone="resnet18", neck_feat="pre")
    with pytest.raises(ValueError, match=r"model 'agw'.*non_locals"):
        create_model("agw", num_classes=3, backbone="resnet18", non_locals=[0, 2, 3, 0])
