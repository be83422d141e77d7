"""Tests of DIMN (our design of the published description): parts, RFM, DFM branches 1 and 2,
saliency-window suppression, ablation switches, shapes at 384x128 and 256x128."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from reid_pipeline.models import ReidOutput, create_model
from reid_pipeline.models.dimn import DIMN
from reid_pipeline.models.layers.parts import horizontal_parts

NUM_CLASSES = 5
PIDS = torch.tensor([0, 0, 1, 1])


def _dimn(**kw: object) -> DIMN:
    torch.manual_seed(0)
    # the residual RFM keeps every width at D; the paper's concat RFM has its own tests below
    options: dict[str, object] = {
        "backbone": "resnet18",
        "num_classes": NUM_CLASSES,
        "rfm": "residual",
    }
    options.update(kw)
    model = create_model("dimn", **options)  # type: ignore[arg-type]
    assert isinstance(model, DIMN)
    return model.train()


def _images(b: int = 4, h: int = 128, w: int = 64, seed: int = 1) -> Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _capture(model: DIMN) -> dict[str, Tensor]:
    """Hooks recording the layer-3 output, F and the input of the branch-2 layer-4 copy."""
    seen: dict[str, Tensor] = {}
    model.backbone.layer3.register_forward_hook(lambda m, i, o: seen.__setitem__("l3", o))
    model.backbone.layer4.register_forward_hook(lambda m, i, o: seen.__setitem__("f", o))
    model.erased_layer4.register_forward_pre_hook(lambda m, i: seen.__setitem__("erased", i[0]))
    return seen


def test_default_train_output_layout() -> None:
    model = _dimn()
    out = model(_images())  # no targets needed
    assert isinstance(out, ReidOutput)
    # 5 fused g_n + 20 RFM parts + branch 2 + saliency attention
    assert len(out.logits) == 5 + 20 + 1 + 1
    assert all(lg.shape == (4, NUM_CLASSES) for lg in out.logits)
    # triplet: cat(g_n, r_n1..r_nn) per granularity, then the branch-2 vector
    assert [f.shape[1] for f in out.feats] == [256 * (n + 1) for n in (2, 3, 4, 5, 6)] + [512]
    assert out.extras["saliency"].shape == (4, 1, 8, 4)
    assert out.extras["keep_mask"].shape == (4, 1, 8, 4)
    assert model.feat_dim == 5 * 256 + 5 * 256 + 512
    model.eval()
    with torch.no_grad():
        emb = model(_images())
    assert emb.shape == (4, 3072)
    assert not torch.allclose(emb.norm(dim=1), torch.ones(4))  # un-normalised


def test_rfm_and_fusion_follow_the_design() -> None:
    """Recompute branch 1 by hand from F: parts, reducers, r = p + phi([p; g]), g_n."""
    grans = (2, 3)
    model = _dimn(granularities=grans, neck="linear", triplet_feats="concat")
    seen = _capture(model)
    out = model(_images())
    f = seen["f"]  # (B, C4, 8, 4)
    g = model.global_reduce(F.adaptive_max_pool2d(f, 1)).flatten(1)  # (B, D)
    # one reducer per granularity, then ONE phi over all 2 + 3 parts (a single BN)
    p = torch.cat(
        [
            red(horizontal_parts(f, n, pool="max")[..., None])
            for red, n in zip(model.part_reducers, grans, strict=True)
        ],
        dim=2,
    )  # (B, D, 5, 1)
    r = (p + model.rfm(torch.cat([p, g[:, :, None, None].expand(-1, -1, 5, 1)], dim=1))).squeeze(3)
    assert r.shape == (4, 256, 5)
    offset = 0
    for k, n in enumerate(grans):
        r_n = r[:, :, offset : offset + n]  # (B, D, n)
        g_n = g + model.fusers[k](torch.cat([g, r_n.mean(dim=2)], dim=1))
        torch.testing.assert_close(out.feats[k], torch.cat([g_n, r_n.flatten(1)], dim=1))
        torch.testing.assert_close(out.logits[k], model.fused_necks[k].classifier(g_n))
        for i in range(n):
            head = model.part_necks[offset + i].classifier
            torch.testing.assert_close(out.logits[len(grans) + offset + i], head(r_n[:, :, i]))
        offset += n


def test_concat_rfm_is_the_part_and_whole_vectors_side_by_side() -> None:
    """The paper's RFM (the default): r = [p ; g], 2D wide; no phi."""
    grans = (2, 3)
    model = _dimn(granularities=grans, neck="linear", rfm="concat", test_rfm="all")
    assert model.rfm is None
    assert create_model("dimn", num_classes=3, backbone="resnet18").rfm_mode == "concat"
    seen = _capture(model)
    out = model(_images())
    f = seen["f"]
    g = model.global_reduce(F.adaptive_max_pool2d(f, 1)).flatten(1)  # (B, D)
    p = torch.cat(
        [
            red(horizontal_parts(f, n, pool="max")[..., None])
            for red, n in zip(model.part_reducers, grans, strict=True)
        ],
        dim=2,
    ).squeeze(3)  # (B, D, 5)
    r = torch.cat([p, g[:, :, None].expand(-1, -1, 5)], dim=1)  # (B, 2D, 5)
    offset = 0
    for k, n in enumerate(grans):
        r_n = r[:, :, offset : offset + n]
        g_n = g + model.fusers[k](torch.cat([g, r_n.mean(dim=2)], dim=1))
        torch.testing.assert_close(out.feats[k], torch.cat([g_n, r_n.flatten(1)], dim=1))
        assert out.feats[k].shape[1] == 256 + n * 512
        for i in range(n):
            head = model.part_necks[offset + i].classifier
            torch.testing.assert_close(out.logits[len(grans) + offset + i], head(r_n[:, :, i]))
        offset += n
    # test embedding: fused (2 x D) + every RFM vector (5 x 2D) + branch 2
    assert model.feat_dim == 2 * 256 + 5 * 512 + 512
    with torch.no_grad():
        assert model.eval()(_images()).shape == (4, model.feat_dim)


@pytest.mark.parametrize("stripes", ["partition", "adaptive"])
def test_stripes_option_reaches_the_part_pooling(stripes: str) -> None:
    """96 x 48 (the CPU recipe) gives a 6-row map: n = 4 and 5 do not divide it."""
    model = _dimn(stripes=stripes, granularities=(4, 5), neck="linear")
    seen = _capture(model)
    model.part_reducers[0].register_forward_hook(lambda m, i, o: seen.__setitem__("p4", i[0]))
    model(_images(h=96, w=48))
    f = seen["f"]
    assert f.shape[2] == 6
    expected = horizontal_parts(f, 4, pool="max", split=stripes)[..., None]  # (B, C4, 4, 1)
    assert torch.equal(seen["p4"], expected)
    other = "adaptive" if stripes == "partition" else "partition"
    assert not torch.equal(expected, horizontal_parts(f, 4, pool="max", split=other)[..., None])
    with pytest.raises(ValueError, match="stripes must be one of"):
        _dimn(stripes="overlap")
    with pytest.raises(ValueError, match="rfm must be one of"):
        _dimn(rfm="sum")


def test_suppression_zeroes_the_window_around_the_argmax() -> None:
    model = _dimn()
    seen = _capture(model)
    out = model(_images(h=384, w=128))  # map 24 x 8: window round(24 / 3) = 8 rows
    sal = out.extras["saliency"][:, 0]
    l3, erased = seen["l3"], seen["erased"]
    assert l3.shape[-2:] == (24, 8)
    for b in range(4):
        row = int(sal[b].flatten().argmax()) // 8
        start = min(max(row - 4, 0), 24 - 8)
        window = torch.zeros(24, dtype=torch.bool)
        window[start : start + 8] = True
        assert bool((erased[b][:, window] == 0).all())  # the window, full width, is zeroed
        torch.testing.assert_close(erased[b][:, ~window], l3[b][:, ~window])  # the rest intact
        assert float(l3[b][:, window].detach().abs().sum()) > 0  # ... and it was not zero before
        assert torch.equal(out.extras["keep_mask"][b, 0, :, 0], (~window).float())


def test_erase_width_and_height_options() -> None:
    model = _dimn(erase_height=0.25, erase_width=0.5)
    seen = _capture(model)
    out = model(_images())  # map 8 x 4: window 2 x 2
    keep = out.extras["keep_mask"]
    assert bool(((keep == 0).flatten(1).sum(1) == 4).all())
    torch.testing.assert_close(seen["erased"], seen["l3"] * keep)


@pytest.mark.parametrize("erase_at_test", [True, False])
def test_erase_at_test(erase_at_test: bool) -> None:
    model = _dimn(erase_at_test=erase_at_test).eval()
    seen = _capture(model)
    with torch.no_grad():
        model(_images())
    zero_rows = (seen["erased"] == 0).all(dim=1).all(dim=2).sum(dim=1)  # (B,) fully zero rows
    assert zero_rows.tolist() == ([3] * 4 if erase_at_test else [0] * 4)  # round(8 / 3) = 3


def test_saliency_supervision_trains_the_saliency_head() -> None:
    model = _dimn()
    out = model(_images())
    sum(F.cross_entropy(lg, PIDS) for lg in out.logits).backward()
    for module in (model.saliency_head, model.gate, model.erased_layer4):
        assert all(
            p.grad is not None and float(p.grad.abs().sum()) > 0 for p in module.parameters()
        )
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []

    plain = _dimn(saliency_supervision=False)
    out = plain(_images())
    assert len(out.logits) == 26
    sum(F.cross_entropy(lg, PIDS) for lg in out.logits).backward()
    # without the attention classifier nothing differentiable reaches the head (documented)
    assert all(p.grad is None for p in plain.saliency_head.parameters())


@pytest.mark.parametrize(
    ("options", "n_logits", "feat_dims", "feat_dim"),
    [
        ({"granularities": [2, 3]}, 2 + 5 + 2, [768, 1024, 512], 2 * 256 + 2 * 256 + 512),
        ({"branch2": False}, 25, [768, 1024, 1280, 1536, 1792], 2560),
        ({"triplet_feats": "fused"}, 27, [256] * 5 + [512], 3072),
        ({"test_rfm": "all"}, 27, None, 1280 + 20 * 256 + 512),
        ({"test_parts": ["branch2"]}, 27, None, 512),
        ({"test_parts": ["global", "fused"]}, 27, None, 256 + 1280),
        (
            {"embed_dim": 64, "branch2_dim": 128},
            27,
            [64 * (n + 1) for n in range(2, 7)] + [128],
            5 * 64 * 2 + 128,
        ),
        ({"granularities": [4], "share_part_reducer": True}, 1 + 4 + 2, [1280, 512], 1024),
    ],
)
def test_ablation_switches(
    options: dict[str, object], n_logits: int, feat_dims: list[int] | None, feat_dim: int
) -> None:
    model = _dimn(**options)
    out = model(_images())
    assert len(out.logits) == n_logits
    if feat_dims is not None:
        assert [f.shape[1] for f in out.feats] == feat_dims
    assert model.feat_dim == feat_dim
    model.eval()
    with torch.no_grad():
        assert model(_images()).shape == (4, feat_dim)
    assert hasattr(model, "erased_layer4") == options.get("branch2", True)


def test_test_neck_and_pooling_change_the_embedding() -> None:
    after = _dimn()
    images = _images()
    with torch.no_grad():
        after(images)  # one training forward: the BN running statistics move off (0, 1)
    after.eval()
    before = _dimn(test_neck="before").eval()
    avg = _dimn(pool="avg").eval()
    before.load_state_dict(after.state_dict())
    avg.load_state_dict(after.state_dict())
    with torch.no_grad():
        e_after, e_before, e_avg = after(images), before(images), avg(images)
        assert e_after.shape == e_before.shape == e_avg.shape
        assert not torch.allclose(e_after, e_before)
        assert not torch.allclose(e_after, e_avg)
        # the branch-2 part: post-BN vs pre-BN of the same vector
        torch.testing.assert_close(e_after[:, -512:], after.branch2_neck.bnneck(e_before[:, -512:]))


def test_bad_options_and_inputs_give_clear_errors() -> None:
    for bad, match in [
        ({"granularities": []}, "granularities"),
        ({"granularities": [2, 2]}, "granularities"),
        ({"granularities": [0, 2]}, "granularities"),
        ({"pool": "median"}, "pool must be one of"),
        ({"neck": "arcface"}, "neck must be one of"),
        ({"erase_height": 0.0}, r"\(0, 1\]"),
        ({"branch2": False, "test_parts": ["fused", "branch2"]}, "branch2 is false"),
        ({"test_parts": ["fused", "bogus"]}, "test_parts"),
        ({"test_rfm": "max"}, "test_rfm"),
        ({"test_parts": "fused"}, "got a string"),
        ({"branch2": "yes"}, "branch2 must be true or false"),
        ({"saliency_dim": 0}, "saliency_dim"),
        ({"granularity": [2]}, "unexpected keyword argument 'granularity'"),
    ]:
        with pytest.raises(ValueError, match=match):
            _dimn(**bad)
    with pytest.raises(ValueError, match="height 8 into 9 parts"):
        _dimn(granularities=[9])(_images())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        _dimn()(torch.randn(2, 1, 128, 64))


def _shapes_and_gradients(backbone: str, size: tuple[int, int], batch: int) -> None:
    torch.manual_seed(0)
    model = create_model("dimn", num_classes=3, backbone=backbone).train()
    h, w = size
    images = torch.randn(batch, 3, h, w)
    pids = torch.arange(batch) % 2
    out = model(images)
    assert out.extras["saliency"].shape == (batch, 1, h // 16, w // 16)
    assert len(out.logits) == 27
    assert [f.shape[0] for f in out.feats] == [batch] * 6
    loss = sum(F.cross_entropy(lg, pids) for lg in out.logits)
    (loss + sum(f.pow(2).mean() for f in out.feats)).backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, n
            assert bool(torch.isfinite(p.grad).all()), n
        else:
            assert n.endswith("bnneck.bias")  # BNNeck's frozen bias only
    assert float(model.backbone.stem[0].weight.grad.abs().sum()) > 0
    model.eval()
    with torch.no_grad():
        # fused 5 x D + RFM means 5 x 2D (the paper's concat RFM) + branch 2
        assert model(images[:2]).shape == (2, 5 * 256 + 5 * 512 + 512)


@pytest.mark.parametrize("size", [(384, 128), (256, 128)])
def test_shapes_and_gradients_resnet18(size: tuple[int, int]) -> None:
    _shapes_and_gradients("resnet18", size, batch=4)


@pytest.mark.slow
@pytest.mark.parametrize("size", [(384, 128), (256, 128)])
def test_shapes_and_gradients_resnet50(size: tuple[int, int]) -> None:
    _shapes_and_gradients("resnet50", size, batch=2)
