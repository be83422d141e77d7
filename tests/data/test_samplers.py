"""P x K samplers: batch structure, exact length, determinism, DDP shares, configuration errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from reid_pipeline.data.samplers import (
    CrossModalitySampler,
    PKSampler,
    SamplerConfigError,
    check_sampler_feasible,
    max_batches,
    schedule,
)


def shuffled_pids(counts: list[int], seed: int = 0) -> np.ndarray:
    pids = np.repeat(np.arange(len(counts)) * 10 + 3, counts)  # non-contiguous pid values
    return np.random.default_rng(seed).permutation(pids)


def batches_of(sampler: PKSampler | CrossModalitySampler) -> np.ndarray:
    indices = np.array(list(sampler))
    assert len(indices) == len(sampler)
    return indices.reshape(-1, sampler.batch_size)


def test_pk_batches_hold_p_identities_with_k_images_each() -> None:
    pids = shuffled_pids([8, 5, 4, 9, 6, 4, 12, 7])
    sampler = PKSampler(pids, p=3, k=4, seed=1)
    assert sampler.batch_size == 12
    batches = batches_of(sampler)
    for batch in batches:
        groups = pids[batch].reshape(3, 4)  # identity by identity
        assert (groups == groups[:, :1]).all()
        assert len(set(groups[:, 0])) == 3
    # no image twice: every identity has >= k images
    assert len(np.unique(batches)) == batches.size


def test_length_is_exact_and_follows_the_counts() -> None:
    # chunks: 8 -> 2, 4 -> 1, 4 -> 1, 2 -> 1 (completed); B = 2 batches of 2 ids
    pids = shuffled_pids([8, 4, 4, 2])
    sampler = PKSampler(pids, p=2, k=4)
    assert len(sampler) == 16
    assert sampler.num_batches == 2
    for epoch in range(5):
        sampler.set_epoch(epoch)
        assert len(list(sampler)) == 16


def test_identity_with_fewer_than_k_images_is_completed_with_all_its_images() -> None:
    pids = shuffled_pids([2, 4, 4, 4])  # pid 3 has 2 images
    sampler = PKSampler(pids, p=2, k=4, seed=0)
    for epoch in range(6):
        sampler.set_epoch(epoch)
        for batch in batches_of(sampler):
            for group in batch.reshape(2, 4):
                if pids[group[0]] == 3:
                    assert set(group) == set(np.flatnonzero(pids == 3))
                else:
                    assert len(set(group)) == 4  # only short identities repeat


def test_forced_identities_keep_the_epoch_feasible() -> None:
    # id 0 has 5 chunks; 5 batches of 2 ids are possible only if id 0 is in every batch
    pids = shuffled_pids([5, 1, 1, 1, 1, 1])
    sampler = PKSampler(pids, p=2, k=1, seed=4)
    for epoch in range(10):
        sampler.set_epoch(epoch)
        batches = batches_of(sampler)
        assert len(batches) == 5
        assert all(3 in pids[b] for b in batches)


@pytest.mark.parametrize(
    ("counts", "p", "expected"),
    [([2, 1, 1, 1], 2, 2), ([5, 1, 1, 1, 1, 1], 2, 5), ([10, 1], 2, 1), ([3, 3, 3], 3, 3)],
)
def test_max_batches(counts: list[int], p: int, expected: int) -> None:
    assert max_batches(np.array(counts), p) == expected


def test_schedule_is_valid_for_random_counts() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(1, 8, size=rng.integers(2, 15))
        p = int(rng.integers(2, len(counts) + 1))
        batches = schedule(counts, p, rng)
        assert len(batches) == max_batches(counts, p)
        used = Counter()
        for ids in batches:
            assert len(ids) == p
            assert len(set(ids.tolist())) == p
            used.update(ids.tolist())
        assert all(used[i] <= counts[i] for i in used)


def test_deterministic_under_seed_and_epoch() -> None:
    pids = shuffled_pids([6, 7, 8, 9, 5, 4])
    a, b = PKSampler(pids, p=2, k=3, seed=7), PKSampler(pids, p=2, k=3, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first
    assert list(PKSampler(pids, p=2, k=3, seed=8)) != first
    # set_epoch(e) reseeds as seed + epoch
    c = PKSampler(pids, p=2, k=3, seed=6)
    c.set_epoch(1)
    assert list(c) == first


@pytest.mark.parametrize("replicas", [2, 3])
def test_ddp_ranks_get_disjoint_shares_of_equal_length(replicas: int) -> None:
    pids = shuffled_pids([8, 9, 10, 6, 7, 8, 12, 5, 6, 9])
    single = PKSampler(pids, p=2, k=4, seed=3)
    global_batches = {tuple(b) for b in single.epoch_batches()}
    shares = []
    for rank in range(replicas):
        sampler = PKSampler(pids, p=2, k=4, seed=3, num_replicas=replicas, rank=rank)
        assert len(sampler) == single.num_batches // replicas * 8
        shares.append({tuple(b) for b in batches_of(sampler)})
    assert all(len(s) == len(shares[0]) for s in shares)
    for i in range(replicas):
        assert shares[i] <= global_batches
        for j in range(i + 1, replicas):
            assert not shares[i] & shares[j]


def test_cross_modality_batches() -> None:
    counts_v, counts_i = [5, 8, 4, 6, 3], [4, 4, 9, 5, 0]  # id 4 has no infrared image
    pids = np.concatenate([np.repeat(np.arange(5), counts_v), np.repeat(np.arange(5), counts_i)])
    modality = np.concatenate([np.zeros(sum(counts_v), int), np.ones(sum(counts_i), int)])
    order = np.random.default_rng(0).permutation(len(pids))
    pids, modality = pids[order], modality[order]
    sampler = CrossModalitySampler(pids, modality, p=2, k=2, seed=0)
    assert sampler.batch_size == 8
    assert list(sampler.identities) == [0, 1, 2, 3]
    assert sampler.plan.identities_ignored == 1
    # "max" chunks: max(n_vis, n_ir) // 2 = 2, 4, 4, 3 -> 13 chunks -> 6 batches
    assert len(sampler) == 6 * 8
    for batch in batches_of(sampler):
        for group in batch.reshape(2, 4):
            assert len(set(pids[group])) == 1
            assert list(modality[group]) == [0, 0, 1, 1]
        assert pids[batch[0]] != pids[batch[4]]
    shortest = CrossModalitySampler(pids, modality, p=2, k=2, chunks="min")
    # "min" chunks: 2, 2, 2, 2 -> 4 batches
    assert len(shortest) == 4 * 8
    seen = set(np.array(list(sampler)).tolist())
    usable = np.flatnonzero(np.isin(pids, [0, 1, 2, 3]))
    assert seen <= set(usable.tolist())
    # each epoch shows nearly every image of both modalities (n mod k left out at most)
    assert len(seen) >= len(usable) - 4


def test_from_batch_size() -> None:
    pids = shuffled_pids([4] * 6)
    assert PKSampler.from_batch_size(pids, batch_size=12, k=4).p == 3
    modality = np.arange(len(pids)) % 2
    assert CrossModalitySampler.from_batch_size(pids, modality, batch_size=8, k=2).p == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 1, "k": 4}, r"p \(identities per batch\) must be an integer >= 2"),
        ({"p": 2, "k": 0}, r"k \(images per identity\) must be an integer >= 1"),
        ({"p": 7, "k": 2}, "p=7 identities per batch but the data has only 6 identities"),
        ({"p": 2, "k": 9}, r"k=9 is larger than the number of images of every identity"),
        ({"p": 2, "k": 2, "num_replicas": 0}, "num_replicas"),
        ({"p": 2, "k": 2, "num_replicas": 2, "rank": 2}, "rank must be an integer in"),
        ({"p": 3, "k": 4, "num_replicas": 5}, "fewer than num_replicas=5"),
        ({"p": 2, "k": 2, "seed": -1}, r"seed \(random seed\) must be an integer >= 0"),
    ],
)
def test_pk_configuration_errors(kwargs: dict, match: str) -> None:
    pids = shuffled_pids([4, 4, 4, 5, 8, 3])
    with pytest.raises(SamplerConfigError, match=match):
        PKSampler(pids, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 10, "k": 4}, "batch_size=10 is not divisible by k=4"),
        ({"batch_size": 4, "k": 4}, "gives p=1 identity per batch"),
        ({"batch_size": 12, "k": 4, "p": 2}, r"does not match p \* k = 8"),
        ({"k": 4}, "give p"),
        ({"p": 2, "k": 4, "allow_repeats": False}, r"k=4 is larger than the number of images of 1"),
    ],
)
def test_feasibility_errors(kwargs: dict, match: str) -> None:
    pids = shuffled_pids([4, 4, 4, 5, 8, 3])
    with pytest.raises(SamplerConfigError, match=match):
        check_sampler_feasible(pids, **kwargs)


def test_feasibility_plan_matches_the_sampler() -> None:
    pids = shuffled_pids([4, 4, 4, 5, 8, 3, 2])
    plan = check_sampler_feasible(pids, k=4, batch_size=8, num_replicas=2)
    sampler = PKSampler(pids, p=2, k=4, num_replicas=2)
    assert plan.num_batches == sampler.num_batches
    assert plan.images_per_epoch == len(sampler)
    assert plan.identities_with_repeats == 2
    assert plan.num_identities == 7


def test_cross_modality_errors() -> None:
    pids = np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(SamplerConfigError, match="only 1 identities with both"):
        CrossModalitySampler(pids, [0, 1, 0, 0, 1, 1], p=2, k=1)
    with pytest.raises(SamplerConfigError, match="modality must hold 0"):
        CrossModalitySampler(pids, [0, 1, 0, 2, 0, 1], p=2, k=1)
    with pytest.raises(SamplerConfigError, match=r"batch_size=6 is not divisible by 2 \* k = 4"):
        CrossModalitySampler.from_batch_size(pids, [0, 1] * 3, batch_size=6, k=2)
    with pytest.raises(SamplerConfigError, match=r"k=2 is larger .* per modality"):
        CrossModalitySampler(pids, [0, 1] * 3, p=2, k=2)
    with pytest.raises(SamplerConfigError, match="chunks must be"):
        CrossModalitySampler(pids, [0, 1] * 3, p=2, k=1, chunks="all")
    with pytest.raises(SamplerConfigError, match="pids must be a non-empty 1-D"):
        PKSampler([0.5, 1.5], p=2, k=1)


# --------------------------------------------------------------------------- epoch="identities"


def test_identity_epoch_is_one_pass_over_the_identities_market_sized() -> None:
    """751 identities (Market-1501's training split, 12,936 images), p=32, k=4: the official PMM
    sampler's 751 x 4 images in batches of 128 with drop_last = 23 batches."""
    rng = np.random.default_rng(0)
    counts = list(rng.integers(4, 35, size=751))
    pids = shuffled_pids(counts)
    images = PKSampler(pids, p=32, k=4)
    ids = PKSampler(pids, p=32, k=4, epoch="identities")
    assert len(ids) // ids.batch_size == ids.num_batches == 751 * 4 // 128 == 23
    assert images.num_batches > 3 * ids.num_batches  # the image epoch is ~4x longer
    plan = check_sampler_feasible(pids, p=32, k=4, epoch="identities")
    assert plan.num_batches == 23
    for epoch in (0, 1):
        ids.set_epoch(epoch)
        batches = batches_of(ids)
        per_identity = Counter(pids[batches.reshape(-1)].tolist())
        # no identity twice in an epoch; 751 - 23 * 32 = 15 left out
        assert set(per_identity.values()) == {4}
        assert len(per_identity) == 23 * 32
        for batch in batches:
            assert len(set(pids[batch].tolist())) == 32
            assert len(set(batch.tolist())) == 128  # k distinct images when an identity has k


@pytest.mark.parametrize(("num_ids", "p"), [(10, 2), (11, 2), (9, 4), (40, 8)])
def test_identity_epoch_length_is_floor_of_identities_over_p(num_ids: int, p: int) -> None:
    pids = shuffled_pids([3 + i % 5 for i in range(num_ids)])
    sampler = PKSampler(pids, p=p, k=2, epoch="identities")
    assert sampler.num_batches == num_ids // p
    two = PKSampler(pids, p=p, k=2, epoch="identities", num_replicas=2, rank=1)
    assert two.num_batches == num_ids // p // 2


def test_identity_epoch_cross_modality_and_bad_value() -> None:
    pids = np.repeat(np.arange(6), 8)
    modality = np.tile([0, 0, 0, 0, 1, 1, 1, 1], 6)
    sampler = CrossModalitySampler(pids, modality, p=2, k=2, epoch="identities")
    assert sampler.num_batches == 3
    with pytest.raises(SamplerConfigError, match="epoch must be one of"):
        PKSampler(pids, p=2, k=2, epoch="batches")


def test_image_epoch_is_unchanged_by_the_option() -> None:
    pids = shuffled_pids([5, 9, 4, 12, 7, 3])
    default = PKSampler(pids, p=2, k=2, seed=3)
    explicit = PKSampler(pids, p=2, k=2, seed=3, epoch="images")
    assert list(default) == list(explicit)


def test_recipe_sampler_section_keeps_old_dumps_and_records_the_identity_epoch() -> None:
    """The recipe's sampler section feeds the checkpoint fingerprint: the default epoch is left
    out of its dump (old checkpoints still resume), the identity epoch is in it."""
    from reid_pipeline.experiment.recipe import SamplerSpec

    assert SamplerSpec(k=4, p=8).model_dump() == {"k": 4, "p": 8, "batch_size": None}
    assert SamplerSpec(k=4, p=8, epoch="images").model_dump() == {
        "k": 4,
        "p": 8,
        "batch_size": None,
    }
    assert SamplerSpec(k=4, p=32, epoch="identities").model_dump()["epoch"] == "identities"
    with pytest.raises(ValueError, match="epoch"):
        SamplerSpec(k=4, p=8, epoch="batches")  # type: ignore[arg-type]
