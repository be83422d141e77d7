"""Every registered loss forces at most two device-to-host syncs per computation.

A sync (``.item()``, ``bool(tensor)``, boolean-mask indexing, ``nonzero``, ``unique``,
``bincount``...) stalls the host until the accelerator has caught up and blocks CUDA graphs. They
are counted on CPU by intercepting the aten operations that would sync on a GPU. Measured with
this file's batch (three feature branches, main + auxiliary projections):

==========  ==============  =====
loss        before (e028f41) now
==========  ==============  =====
ce          0               0
center      2               1 on the first call, then 0
cmkic       8               0
igcl        36              0
triplet     3               0
wrt         3               0
==========  ==============  =====
"""

from __future__ import annotations

import pytest
import torch
from tests.host_syncs import MAX_SYNCS, SyncCounter

from reid_pipeline.losses import build_criterion, list_losses
from reid_pipeline.losses.center import CenterLoss
from reid_pipeline.losses.functional import CHECKS_ENV, masked_mean
from reid_pipeline.losses.igcl import identity_slots, modality_centers, slot_centers
from reid_pipeline.models.base import ReidOutput

B, NUM_CLASSES, DIMS = 16, 6, [8, 6, 5]
# the samplers' layout: 4 identities x (2 visible + 2 infrared) ...
SAMPLER = (torch.arange(4).repeat_interleave(4), torch.tensor([0, 0, 1, 1]).repeat(4))
# ... and a ragged batch: identities seen in one modality only, unsorted pids
RAGGED = (
    torch.tensor([5, 5, 2, 2, 2, 0, 3, 3, 3, 3, 1, 4, 4, 0, 1, 5]),
    torch.tensor([0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0]),
)


def _output(seed: int) -> ReidOutput:
    gen = torch.Generator().manual_seed(seed)
    return ReidOutput(
        logits=[torch.randn(B, NUM_CLASSES, generator=gen, requires_grad=True) for _ in range(2)],
        feats=[torch.randn(B, d, generator=gen, requires_grad=True) for d in DIMS],
        extras={
            "proj": torch.randn(B, 4, generator=gen, requires_grad=True),
            "proj_aux": torch.randn(B, 4, generator=gen, requires_grad=True),
        },
    )


def test_the_counter_sees_syncs() -> None:
    x = torch.tensor([0.0, 1.0, 2.0])
    with SyncCounter() as counter:
        _ = x[x > 0]
        _ = bool((x > 1).any())
        _ = x.nonzero()
        _ = torch.unique(x, return_inverse=True)
        _ = torch.bincount(x.long())
        _ = x * 2  # no sync
        _ = torch.where(x > 0, x, 0.0).sum()  # no sync
    assert len(counter.syncs) == 5, counter.syncs


@pytest.mark.parametrize("layout", [SAMPLER, RAGGED], ids=["sampler", "ragged"])
@pytest.mark.parametrize("name", list_losses())
def test_every_registered_loss_syncs_at_most_twice(name: str, layout: tuple) -> None:
    pids, modality = layout
    criterion = build_criterion(
        [{"name": name}], context={"num_classes": NUM_CLASSES, "feat_dims": DIMS}
    )
    counts = []
    for call in range(3):  # the first call may run one-off input checks
        out = _output(call)
        with SyncCounter() as counter:
            total, _ = criterion(out, pids, modality)
        assert torch.isfinite(total)
        counts.append(counter.syncs)
    assert all(len(c) <= MAX_SYNCS for c in counts), f"{name}: {counts}"
    assert counts[1] == counts[2] == [], f"{name} syncs on every call: {counts[1]}"


def test_debug_flag_checks_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    loss = CenterLoss(num_classes=3, feat_dims=[2])
    feats = torch.zeros(2, 2)
    loss(ReidOutput([], [feats]), torch.tensor([0, 2]))  # first call: checked, fine
    with SyncCounter() as counter:
        value = loss(ReidOutput([], [feats]), torch.tensor([0, 3]))  # not checked any more
    assert counter.syncs == []
    assert torch.isnan(value)  # never a wrong centre: the training loop stops on NaN
    monkeypatch.setenv(CHECKS_ENV, "1")
    with pytest.raises(ValueError, match=r"pids must be in \[0, num_classes=3\), got \[-1, 1\]"):
        loss(ReidOutput([], [feats]), torch.tensor([-1, 1]))


def test_center_loss_value_and_gradient_unchanged_after_the_first_call() -> None:
    loss = CenterLoss(num_classes=3, feat_dims=[4])
    pids = torch.tensor([0, 2, 2, 1])
    for _ in range(2):
        feats = torch.randn(4, 4, requires_grad=True)
        value = loss(ReidOutput([], [feats]), pids)
        value.backward()
        centers = loss.centers[0]
        expected = ((feats - centers[pids]) ** 2).sum(1).mean()
        assert torch.equal(value, expected)
        assert torch.equal(feats.grad, (2 / 4 * (feats - centers[pids])).detach())


@pytest.mark.parametrize("layout", [SAMPLER, RAGGED], ids=["sampler", "ragged"])
def test_identity_slots_equal_unique(layout: tuple) -> None:
    pids, modality = layout
    slot, n_ids = identity_slots(pids)
    ids, inverse = pids.unique(return_inverse=True)
    assert torch.equal(slot, inverse)
    assert int(n_ids) == len(ids)
    feats = torch.randn(B, 7, generator=torch.Generator().manual_seed(0))
    n, c_v, c_i, has_v, has_i = slot_centers(feats, pids, modality)
    _, ref_v, ref_i, ref_has_v, ref_has_i = modality_centers(feats, pids, modality)
    # the same sums in the same order: bit-identical centres in the used slots, zeros after
    assert torch.equal(c_v[:n], ref_v)
    assert torch.equal(c_i[:n], ref_i)
    assert torch.equal(has_v[:n], ref_has_v)
    assert torch.equal(has_i[:n], ref_has_i)
    assert not torch.cat([c_v[n:], c_i[n:]]).any()
    assert not (has_v[n:] | has_i[n:]).any()


def test_masked_mean() -> None:
    values = torch.tensor([1.0, 2.0, 4.0, 8.0], requires_grad=True)
    mask = torch.tensor([True, False, True, False])
    value = masked_mean(values, mask)
    assert value.item() == 2.5
    value.backward()
    assert values.grad.tolist() == [0.5, 0.0, 0.5, 0.0]
    empty = masked_mean(values, torch.zeros(4, dtype=torch.bool))
    assert empty.item() == 0.0
    assert empty.requires_grad
    all_true = torch.ones(4, dtype=torch.bool)
    assert torch.equal(masked_mean(values, all_true), values.mean())
