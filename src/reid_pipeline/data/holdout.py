"""Validation identities held out from the training split (never the test set).

Model selection during training must not look at the test identities. ``holdout_split`` moves a
few training identities into a small query / gallery pair that mimics the test protocol:

- single-modality: per held-out identity, one image per camera becomes a query and the rest the
  gallery (identities seen by only one camera stay in training: they could not be matched across
  cameras);
- visible-infrared: infrared images are the queries and visible images the gallery (identities
  lacking either modality stay in training).

The remaining training identities are relabelled ``0..N-1``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from reid_pipeline.data.records import Modality, Record, relabel


@dataclass
class Holdout:
    train: list[Record]
    query: list[Record]
    gallery: list[Record]


def holdout_split(
    records: list[Record], *, num_ids: int, seed: int = 0, cross_modality: bool = False
) -> Holdout:
    """Hold ``num_ids`` identities out of ``records`` for validation (0 = no validation)."""
    if not isinstance(num_ids, int) or num_ids < 0:
        raise ValueError(f"validation.num_ids must be an int >= 0, got {num_ids!r}")
    if num_ids == 0:
        return Holdout(train=relabel(records), query=[], gallery=[])
    by_pid: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        by_pid[r.pid].append(r)
    if cross_modality:
        eligible = [p for p, rs in by_pid.items() if {r.modality for r in rs} == {0, 1}]
    else:
        eligible = [p for p, rs in by_pid.items() if len({r.camid for r in rs}) >= 2]
    eligible.sort()
    if len(by_pid) - num_ids < 2 or len(eligible) < num_ids:
        raise ValueError(
            f"validation.num_ids={num_ids} is too large: the training split has {len(by_pid)} "
            f"identities, {len(eligible)} of them usable for validation "
            f"({'both modalities' if cross_modality else 'seen by >= 2 cameras'}); at least 2 "
            "identities must remain for training"
        )
    rng = random.Random(seed)
    held = set(rng.sample(eligible, num_ids))
    query: list[Record] = []
    gallery: list[Record] = []
    for pid in sorted(held):
        rs = sorted(by_pid[pid])
        if cross_modality:
            query += [r for r in rs if r.modality == Modality.INFRARED]
            gallery += [r for r in rs if r.modality == Modality.VISIBLE]
            continue
        by_cam: dict[int, list[Record]] = defaultdict(list)
        for r in rs:
            by_cam[r.camid].append(r)
        for cam in sorted(by_cam):
            pick = rng.randrange(len(by_cam[cam]))
            query.append(by_cam[cam][pick])
            gallery += [r for i, r in enumerate(by_cam[cam]) if i != pick]
    train = relabel([r for r in records if r.pid not in held])
    return Holdout(train=train, query=query, gallery=gallery)
