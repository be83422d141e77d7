"""Tests of PMM: stages, Grad-CAM against a manual computation, A-Hard-Mix inside the model,
autograd hygiene, ablation switches, shapes at the paper's and the common input size."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from reid_pipeline.models import ReidOutput, create_model
from reid_pipeline.models.layers.hard_mix import block_scores
from reid_pipeline.models.pmm import PMM

NUM_CLASSES = 6
PIDS = torch.tensor([0, 0, 1, 1, 2, 2])


def _pmm(**kw: object) -> PMM:
    torch.manual_seed(0)
    options: dict[str, object] = {"backbone": "resnet18", "num_classes": NUM_CLASSES}
    options.update(kw)
    model = create_model("pmm", **options)  # type: ignore[arg-type]
    assert isinstance(model, PMM)
    return model.train()


def _images(b: int = 6, h: int = 128, w: int = 64, seed: int = 1) -> Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _manual_cam(feature: Tensor) -> Tensor:
    assert feature.grad is not None
    return (feature.grad.mean(dim=(2, 3), keepdim=True) * feature.detach()).sum(1).clamp(min=0)


def _expected_keep(cam: Tensor, top_k: int = 3, block: tuple[int, int] = (3, 2)) -> Tensor:
    """Keep-mask written out with loops: zero on the top_k blocks by CAM sum (ties: first blocks
    in row-major order, as the library documents)."""
    b, h, w = cam.shape
    rows, cols = block
    keep = torch.ones(b, 1, h, w)
    for s in range(b):
        blocks = [
            (float(cam[s, i : i + rows, j : j + cols].sum()), i, j)
            for i in range(0, h, rows)
            for j in range(0, w, cols)
        ]
        for _, i, j in sorted(blocks, key=lambda t: -t[0])[:top_k]:
            keep[s, 0, i : i + rows, j : j + cols] = 0
    return keep


def test_parameter_count_matches_the_paper() -> None:
    model = create_model("pmm", num_classes=751)  # resnet50
    assert sum(p.numel() for p in model.parameters()) == 32_276_749  # "about 32.3M"
    assert model.feat_dim == 1536


def test_train_output_and_no_parameter_gradient_from_grad_cam() -> None:
    model = _pmm()
    out = model(_images(), targets=PIDS)
    assert isinstance(out, ReidOutput)
    assert [t.shape for t in out.logits] == [(6, NUM_CLASSES)] * 3
    assert [t.shape for t in out.feats] == [(6, 512)] * 3
    assert all(bool((f >= 0).all()) for f in out.feats)  # post-ReLU features, as the official
    assert all(p.grad is None for p in model.parameters())  # Grad-CAM wrote no gradient
    sum(F.cross_entropy(lg, PIDS) for lg in out.logits).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert float(model.backbone.stem[0].weight.grad.abs().sum()) > 0


def test_grad_cams_masks_and_stages_equal_a_manual_computation() -> None:
    model = _pmm()
    ref = copy.deepcopy(model)  # same weights; train-mode BN uses batch statistics
    images = _images()
    torch.manual_seed(7)
    out = model(images, targets=PIDS)
    cams, keeps, partners = out.extras["cams"], out.extras["keep_masks"], out.extras["partners"]
    assert isinstance(cams, list)
    assert isinstance(keeps, list)
    assert isinstance(partners, list)

    # stage I and its Grad-CAM w.r.t. x, with an explicit backward on the copy
    x = ref.backbone(images)
    x.retain_grad()
    f1 = ref.reduction1(F.adaptive_avg_pool2d(x, 1)).flatten(1)
    l1 = ref.classifier1(f1)
    torch.testing.assert_close(l1, out.logits[0])
    l1.gather(1, PIDS[:, None]).sum().backward()
    torch.testing.assert_close(cams[0], _manual_cam(x))
    assert torch.equal(keeps[0], _expected_keep(_manual_cam(x)))

    # stage II on the mixed map, and the Grad-CAM of its logits w.r.t. z2
    x = ref.backbone(images)
    z = ref.extra_block(x)
    z2 = keeps[0] * z + (1 - keeps[0]) * z[partners[0]]
    z2.retain_grad()
    l2 = ref.classifier2(ref.reduction2(F.adaptive_max_pool2d(z2, 1).flatten(1)))
    torch.testing.assert_close(l2, out.logits[1])
    l2.gather(1, PIDS[:, None]).sum().backward(retain_graph=True)
    torch.testing.assert_close(cams[1], _manual_cam(z2))
    assert torch.equal(keeps[1], _expected_keep(_manual_cam(z2)))

    # stage III mixes the ORIGINAL z, guided by the stage-II CAM
    z3 = keeps[1] * z + (1 - keeps[1]) * z[partners[1]]
    l3 = ref.classifier3(ref.reduction3(F.adaptive_max_pool2d(z3, 1).flatten(1)))
    torch.testing.assert_close(l3, out.logits[2])


def test_partners_are_other_identities_and_reproducible() -> None:
    model = _pmm()
    images = _images()
    torch.manual_seed(11)
    a = model(images, targets=PIDS)
    torch.manual_seed(11)
    b = model(images, targets=PIDS)
    for pa, pb, keep in zip(
        a.extras["partners"], b.extras["partners"], a.extras["keep_masks"], strict=True
    ):
        assert bool((PIDS[pa] != PIDS).all())
        assert torch.equal(pa, pb)
        # exactly top_k = 3 blocks of 3 x 2 cells on the 8 x 4 map (blocks 3, 3, 2 rows tall)
        zeros = (keep[:, 0] == 0).flatten(1).sum(1)
        assert bool(((zeros >= 4 + 4 + 6) & (zeros <= 6 + 6 + 6)).all())
    for la, lb in zip(a.logits, b.logits, strict=True):
        torch.testing.assert_close(la, lb)
    # the partner is drawn by pid, whatever the batch order: interleaved identities
    pids = torch.tensor([2, 0, 1, 0, 2, 1])
    out = model(images, targets=pids)
    for partner in out.extras["partners"]:
        assert bool((pids[partner] != pids).all())


def test_mixing_changes_the_mixed_stages_only_and_block_size_top_k_matter() -> None:
    images = _images()
    mixed = _pmm()
    plain = _pmm(mixing=False)
    plain.load_state_dict(mixed.state_dict())
    torch.manual_seed(3)
    out_m = mixed(images, targets=PIDS)
    out_p = plain(images)  # no targets needed without mixing
    assert out_p.extras == {}
    torch.testing.assert_close(out_m.logits[0], out_p.logits[0])
    assert not torch.allclose(out_m.logits[1], out_p.logits[1])
    assert not torch.allclose(out_m.logits[2], out_p.logits[2])

    one = _pmm(top_k=1, block_size=[2, 4])  # a list, as parameters files give it
    out = one(images, targets=PIDS)
    for keep in out.extras["keep_masks"]:
        assert bool(((keep[:, 0] == 0).flatten(1).sum(1) == 8).all())  # one 2 x 4 block


@pytest.mark.parametrize(("stages", "dim"), [(1, 512), (2, 1024), (3, 1536)])
def test_number_of_stages(stages: int, dim: int) -> None:
    model = _pmm(num_stages=stages)
    out = model(_images(), targets=PIDS)
    assert len(out.logits) == len(out.feats) == stages
    assert model.feat_dim == dim
    assert len(out.extras.get("cams", [])) == stages - 1
    assert hasattr(model, "extra_block") == (stages > 1)
    model.eval()
    assert model(_images()).shape == (6, dim)


def test_eval_embedding_is_f1_f2_f3_in_order_and_unnormalised() -> None:
    full = _pmm().eval()
    two = _pmm(num_stages=2).eval()
    one = _pmm(num_stages=1).eval()
    two.load_state_dict(full.state_dict(), strict=False)
    one.load_state_dict(full.state_dict(), strict=False)
    images = _images()
    with torch.no_grad():
        emb = full(images)
        torch.testing.assert_close(emb[:, :1024], two(images))
        torch.testing.assert_close(emb[:, :512], one(images))
        # no mixing at test time: the embedding does not depend on the RNG
        torch.manual_seed(123)
        torch.testing.assert_close(full(images), emb)
    assert not torch.allclose(emb.norm(dim=1), torch.ones(6))


def test_no_grad_training_forward_gives_same_values_detached() -> None:
    model = _pmm()
    images = _images()
    torch.manual_seed(5)
    ref = model(images, targets=PIDS)
    torch.manual_seed(5)
    with torch.no_grad():
        out = model(images, targets=PIDS)
    for a, b in zip(out.logits + out.feats, ref.logits + ref.feats, strict=True):
        assert not a.requires_grad
        torch.testing.assert_close(a, b)
    assert all(p.grad is None for p in model.parameters())
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        model(images, targets=PIDS)


def test_frozen_trunk_still_gets_grad_cam() -> None:
    model = _pmm()
    model.backbone.requires_grad_(False)
    out = model(_images(), targets=PIDS)
    assert len(out.extras["cams"]) == 2
    assert float(out.extras["cams"][0].sum()) > 0
    assert all(p.grad is None for p in model.parameters())


def test_bad_inputs_and_options_give_clear_errors() -> None:
    model = _pmm()
    with pytest.raises(ValueError, match="needs targets"):
        model(_images())
    with pytest.raises(ValueError, match="at least two identities"):
        model(_images(), targets=torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="relabelled"):
        model(_images(), targets=torch.tensor([0, 0, 1, 1, 2, 99]))
    with pytest.raises(ValueError, match="top_k=3 exceeds the 2 blocks"):
        model(_images(h=64, w=32), targets=PIDS)  # a 4 x 2 map holds two 3 x 2 blocks
    with pytest.raises(ValueError, match="num_stages"):
        _pmm(num_stages=4)
    with pytest.raises(ValueError, match="block_size"):
        _pmm(block_size=(3,))
    with pytest.raises(ValueError, match="top_k"):
        _pmm(top_k=0)
    with pytest.raises(ValueError, match="unexpected keyword argument 'stages'"):
        _pmm(stages=2)


def _shapes_and_gradients(backbone: str, size: tuple[int, int], pids: Tensor) -> None:
    torch.manual_seed(0)
    model = create_model("pmm", num_classes=4, backbone=backbone).train()
    h, w = size
    images = torch.randn(len(pids), 3, h, w)
    out = model(images, targets=pids)
    grid = (h // 16, w // 16)
    assert [tuple(c.shape) for c in out.extras["cams"]] == [(len(pids), *grid)] * 2
    assert [t.shape for t in out.feats] == [(len(pids), 512)] * 3
    assert all(p.grad is None for p in model.parameters())
    sum(
        F.cross_entropy(lg, pids) + f.pow(2).mean()
        for lg, f in zip(out.logits, out.feats, strict=True)
    ).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads.values())
    assert float(grads["backbone.layer1.0.conv1.weight"].abs().sum()) > 0
    model.eval()
    with torch.no_grad():
        assert model(images[:2]).shape == (2, 1536)


@pytest.mark.parametrize("size", [(384, 128), (256, 128)])
def test_shapes_and_gradients_resnet18(size: tuple[int, int]) -> None:
    _shapes_and_gradients("resnet18", size, torch.tensor([0, 0, 1, 1]))


@pytest.mark.slow
@pytest.mark.parametrize("size", [(384, 128), (256, 128)])
def test_shapes_and_gradients_resnet50(size: tuple[int, int]) -> None:
    _shapes_and_gradients("resnet50", size, torch.tensor([0, 1]))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_training_forward() -> None:
    model = _pmm().cuda()
    images, pids = _images().cuda(), PIDS.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(images, targets=pids)
    assert all(bool((pids[p] != pids).all()) for p in out.extras["partners"])
    assert all(p.grad is None for p in model.parameters())
    sum(F.cross_entropy(lg.float(), pids) for lg in out.logits).backward()
    assert model.backbone.stem[0].weight.grad is not None


def test_block_scores_helper_matches_manual_keep() -> None:
    # the model's mask helper and the test's loop agree on a map not divisible by the block
    cam = torch.rand(3, 16, 8)
    scores = block_scores(cam, (3, 2)).flatten(1)
    keep = _expected_keep(cam)
    for s in range(3):
        top = scores[s].topk(3).indices
        for blk in top.tolist():
            i, j = divmod(blk, 4)
            assert bool((keep[s, 0, 3 * i : 3 * i + 3, 2 * j : 2 * j + 2] == 0).all())
