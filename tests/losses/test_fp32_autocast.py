"""Every loss computes in float32 whatever the autocast state (CPU bf16 autocast here).

The inputs are tight late-training clusters: 64 features of dimension 2048 with norms ~30 whose
pairwise distances differ in the third significant digit. A bf16 ``x @ y.t()`` (8 bits of
mantissa on products of size ~900) moves such distances by whole units, which changes the
hardest positive / negative an anchor mines; the test first checks that it does, so it can fail.

Tolerance: none. With autocast switched off inside the losses the code path under autocast is the
one without it, so values, mined indices and gradients must be bit-identical (``torch.equal``).
"""

from __future__ import annotations

import pytest
import torch

from reid_pipeline.losses import build_criterion, list_losses
from reid_pipeline.losses.cmkic import cmkic_key_instances, cmkic_loss
from reid_pipeline.losses.functional import pid_masks, self_distance
from reid_pipeline.losses.igcl import igcl_terms
from reid_pipeline.losses.triplet import hardest_pairs
from reid_pipeline.models.base import ReidOutput

B, DIM, IDS = 64, 2048, 16  # 16 identities x 4 images
PIDS = torch.arange(IDS).repeat_interleave(B // IDS)
MODALITY = torch.tensor([0, 0, 1, 1]).repeat(IDS)  # the cross-modality sampler's layout


def bf16_autocast() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def tight_clusters(seed: int = 0) -> torch.Tensor:
    """(64, 2048) features, norms ~30, identity offsets ~0.3, image offsets ~0.3."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.normalize(torch.randn(DIM, generator=gen), dim=0) * 30.0
    ids = torch.randn(IDS, DIM, generator=gen) * 0.3 / DIM**0.5  # norm ~0.3 per identity
    imgs = torch.randn(B, DIM, generator=gen) * 0.3 / DIM**0.5  # norm ~0.3 per image
    return base + ids[PIDS] + imgs


def test_inputs_are_ones_where_bf16_changes_the_mining() -> None:
    x = tight_clusters()
    norms = x.norm(dim=1)
    assert norms.min() > 29.0
    assert norms.max() < 31.0
    exact = self_distance(x)
    with bf16_autocast():  # the naive formula: what the losses computed before
        sq = x.pow(2).sum(1, keepdim=True) + x.pow(2).sum(1).unsqueeze(0) - 2.0 * x @ x.t()
    naive = sq.float().clamp_min(1e-12).sqrt()
    pos, neg = hardest_pairs(exact, PIDS)
    is_pos, is_neg = pid_masks(PIDS)
    naive_pos = naive.masked_fill(~is_pos, -1.0).argmax(dim=1)
    naive_neg = naive.masked_fill(~is_neg, float("inf")).argmin(dim=1)
    assert (naive_pos != pos).sum() > B // 4
    assert (naive_neg != neg).sum() > B // 4
    # hardest-positive distances differ in the 3rd significant digit across anchors
    d_ap = exact.gather(1, pos[:, None]).squeeze(1)
    assert d_ap.min() > 0.3
    assert d_ap.max() < 0.5


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_distances_and_mined_pairs_equal_fp32(metric: str) -> None:
    x = tight_clusters()
    ref = self_distance(x, metric=metric)
    with bf16_autocast():
        dist = self_distance(x, metric=metric)
        pos, neg = hardest_pairs(dist, PIDS)
    assert dist.dtype == torch.float32
    assert torch.equal(dist, ref)
    ref_pos, ref_neg = hardest_pairs(ref, PIDS)
    assert torch.equal(pos, ref_pos)
    assert torch.equal(neg, ref_neg)


def test_cmkic_key_instances_equal_fp32() -> None:
    z = tight_clusters(1)
    ref = cmkic_key_instances(z, PIDS, MODALITY, k=1)
    with bf16_autocast():
        key = cmkic_key_instances(z, PIDS, MODALITY, k=1)
        value = cmkic_loss(z, PIDS, MODALITY, k=1)
    assert torch.equal(key, ref)
    assert key.sum() == B  # one key instance per anchor: each has 2 cross-modality positives
    assert value.dtype == torch.float32
    assert torch.equal(value, cmkic_loss(z, PIDS, MODALITY, k=1))


def test_igcl_terms_equal_fp32() -> None:
    x = tight_clusters(2)
    ref = igcl_terms(x, PIDS, MODALITY, rho=2.0, normalize=False)
    with bf16_autocast():
        got = igcl_terms(x, PIDS, MODALITY, rho=2.0, normalize=False)
    assert torch.equal(torch.stack(got), torch.stack(ref))


def _criterion_specs() -> list[dict]:
    specs: list[dict] = []
    for name in list_losses():
        specs.append({"name": name})
        if name == "triplet":
            specs += [{"name": name, "soft": True}, {"name": name, "distance": "cosine"}]
        if name == "wrt":
            specs.append({"name": name, "distance": "cosine"})
        if name == "igcl":
            specs.append({"name": name, "normalize": False, "rho": 2.0})
    return specs


@pytest.mark.parametrize("spec", _criterion_specs(), ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("feat_dtype", [torch.float32, torch.bfloat16])
def test_every_registered_loss_equals_fp32_under_autocast(
    spec: dict, feat_dtype: torch.dtype
) -> None:
    """Value and gradients under bf16 autocast equal those without autocast, bit for bit.

    ``feat_dtype`` bf16: the model's autocast output; the loss must still compute in fp32 (from
    the bf16 values), so the reference is the same bf16 tensors without autocast."""
    gen = torch.Generator().manual_seed(3)
    feats = tight_clusters(4).to(feat_dtype)
    proj = (tight_clusters(5)[:, :128] + torch.randn(B, 128, generator=gen)).to(feat_dtype)
    logits = (torch.randn(B, IDS, generator=gen) * 5).to(feat_dtype)

    def run(autocast: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        leaves = [t.detach().clone().requires_grad_(True) for t in (feats, proj, logits)]
        out = ReidOutput(
            logits=[leaves[2]],
            feats=[leaves[0]],
            extras={"proj": leaves[1], "proj_aux": leaves[1] * 0.5},
        )
        torch.manual_seed(0)  # the same centre-loss centres in both runs
        crit = build_criterion([spec], context={"num_classes": IDS, "feat_dims": [DIM]})
        if autocast:
            with bf16_autocast():
                total, _ = crit(out, PIDS, MODALITY)
        else:
            total, _ = crit(out, PIDS, MODALITY)
        total.backward()
        return total.detach(), [t.grad for t in leaves]

    ref, ref_grads = run(autocast=False)
    value, grads = run(autocast=True)
    assert value.dtype == torch.float32
    assert torch.isfinite(ref)
    assert ref > 0  # every loss is active on these clusters (hard margin included)
    assert torch.equal(value, ref), f"{spec}: {value.item()} != {ref.item()}"
    for got, want in zip(grads, ref_grads, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            assert torch.equal(got, want)
