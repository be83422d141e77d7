"""Planners of the single-modality layouts: Market-1501, DukeMTMC-reID, CUHK03-NP, MSMT17.

Folder and file names follow the real releases (docs/datasets.md):

- Market-1501 (Zheng et al., ICCV 2015): ``Market-1501-v15.09.15/{bounding_box_train,
  bounding_box_test,query}/PPPP_cCsS_FFFFFF_BB.jpg``, cameras 1-6. ``bounding_box_test`` also
  holds distractors (pid ``0000``, bad detections cutting a body) and junk (pid ``-1``,
  background or fragments). One query per (test id, camera) where the id still has a gallery
  image in another camera, as in the real protocol.
- DukeMTMC-reID (Zheng et al., ICCV 2017): ``DukeMTMC-reID/{...}/PPPP_cC_fFFFFFFF.jpg``, cameras
  1-8; its distractors are gallery-only identities seen by one camera (no ``0000`` / ``-1``).
- CUHK03-NP (Zhong et al., CVPR 2017 re-split of Li et al., CVPR 2014): ``cuhk03-np/{detected,
  labeled}/{...}/PPPP_cC_N.png``, 2 cameras, N numbering an id's images (camera 1 first, camera 2
  from 6 on); both variants show the same photographs, ``labeled`` with tight hand-drawn boxes,
  ``detected`` with looser detector boxes. One query per (test id, camera).
- MSMT17 (Wei et al., CVPR 2018):
  ``MSMT17_V1/{train,test}/PPPP/PPPP_NNN_CC_<date><time>_SSSS_n.jpg`` with
  ``list_{train,val,query,gallery}.txt`` (``0000/0000_000_01_0303morning_0015_0.jpg 0``: path
  relative to the image folder, label = pid, 0-based; train and test pids both start at 0);
  V2 uses ``mask_train_v2`` / ``mask_test_v2`` and masked faces. 15 cameras.
- Your own data (docs/custom_data.md), from the Market-1501 plan (same persons and pictures):
  ``folders`` writes ``synthetic_folders/{train,query,gallery}/<pid>/<Market file name>``
  (distractors under ``gallery/0000``), ``manifest`` writes ``synthetic_manifest/images/<split>/
  <Market file name>`` plus ``manifest.csv`` (``path,pid,camid,modality,split``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from reid_pipeline.data.synthetic.options import SyntheticOptions
from reid_pipeline.data.synthetic.plan import (
    DISTRACTOR,
    JUNK,
    PERSON,
    ImageJob,
    Plan,
    count,
    identity_key,
    pick_cameras,
    plan_rng,
    select_queries,
    split_ids,
)

_MSMT_DATES = ("0113", "0114", "0302", "0303")
_MSMT_TIMES = ("morning", "noon", "afternoon")


def _person_tracks(
    rng: np.random.Generator,
    pids: list[int],
    cameras: list[int],
    k_range: tuple[int, int],
    ipc: tuple[int, int],
) -> dict[int, dict[int, int]]:
    """{pid: {camera: number of images}}."""
    return {pid: {c: count(rng, ipc) for c in pick_cameras(rng, cameras, k_range)} for pid in pids}


def plan_market1501(o: SyntheticOptions) -> Plan:
    stream = o.spec.stream
    rng = plan_rng(o.seed, stream)
    train, test, _ = split_ids(rng, o.num_train_ids, o.num_test_ids)
    cams = list(range(1, 7))
    frames = {(c, s): int(rng.integers(100, 2000)) for c in cams for s in range(1, 7)}
    plan = Plan()

    def name(pid_text: str, cam: int, seq: int) -> str:
        frames[cam, seq] += int(rng.integers(5, 100))
        box = int(rng.integers(0, 4))
        return f"{pid_text}_c{cam}s{seq}_{frames[cam, seq]:06d}_{box:02d}.jpg"

    def person(folder: str, pid: int, cam: int, seq: int, index: int) -> None:
        plan.jobs.append(
            ImageJob(
                f"{folder}/{name(f'{pid:04d}', cam, seq)}",
                identity_key(stream, PERSON, pid),
                cam,
                (PERSON, pid, cam, index),
            )
        )

    for split, pids in (("train", train), ("test", test)):
        for pid, counts in _person_tracks(rng, pids, cams, (2, 6), o.images_per_camera).items():
            queries = select_queries(rng, counts, 1.0) if split == "test" else {}
            for cam, n in counts.items():
                seq = int(rng.integers(1, 7))
                for i in range(n):
                    if split == "train":
                        folder = "bounding_box_train"
                    else:
                        folder = "query" if queries.get(cam) == i else "bounding_box_test"
                    person(folder, pid, cam, seq, i)
    for role, count_, text, crop in (
        (DISTRACTOR, o.num_distractors, "0000", "partial"),
        (JUNK, o.num_junk, "-1", "junk"),
    ):
        for i in range(count_):
            cam, seq = int(rng.integers(1, 7)), int(rng.integers(1, 7))
            plan.jobs.append(
                ImageJob(
                    f"bounding_box_test/{name(text, cam, seq)}",
                    identity_key(stream, role, i),
                    cam,
                    (role, i, cam, 0),
                    crop=crop,
                )
            )
    return plan


def plan_dukemtmc(o: SyntheticOptions) -> Plan:
    stream = o.spec.stream
    rng = plan_rng(o.seed, stream)
    train, test, extra = split_ids(rng, o.num_train_ids, o.num_test_ids, extra=o.num_distractors)
    cams = list(range(1, 9))
    frames = {c: int(rng.integers(40_000, 60_000)) for c in cams}
    plan = Plan()

    def add(folder: str, pid: int, cam: int, index: int) -> None:
        frames[cam] += int(rng.integers(1, 150))
        plan.jobs.append(
            ImageJob(
                f"{folder}/{pid:04d}_c{cam}_f{frames[cam]:07d}.jpg",
                identity_key(stream, PERSON, pid),
                cam,
                (PERSON, pid, cam, index),
            )
        )

    for split, pids in (("train", train), ("test", test)):
        for pid, counts in _person_tracks(rng, pids, cams, (2, 5), o.images_per_camera).items():
            queries = select_queries(rng, counts, 1.0) if split == "test" else {}
            for cam, n in counts.items():
                for i in range(n):
                    if split == "train":
                        add("bounding_box_train", pid, cam, i)
                    else:
                        add("query" if queries.get(cam) == i else "bounding_box_test", pid, cam, i)
    for pid, counts in _person_tracks(rng, extra, cams, (1, 1), o.images_per_camera).items():
        for cam, n in counts.items():  # gallery-only identities: Duke's distractors
            for i in range(n):
                add("bounding_box_test", pid, cam, i)
    return plan


def plan_cuhk03(o: SyntheticOptions) -> Plan:
    stream = o.spec.stream
    rng = plan_rng(o.seed, stream)
    train, test, _ = split_ids(rng, o.num_train_ids, o.num_test_ids)
    plan = Plan()
    for split, pids in (("train", train), ("test", test)):
        for pid in pids:
            counts = {1: count(rng, o.images_per_camera), 2: count(rng, o.images_per_camera)}
            queries = select_queries(rng, counts, 1.0) if split == "test" else {}
            first = {1: 1, 2: max(5, counts[1]) + 1}
            for cam, n in counts.items():
                for i in range(n):
                    if split == "train":
                        folder = "bounding_box_train"
                    else:
                        folder = "query" if queries.get(cam) == i else "bounding_box_test"
                    for v, (variant, jitter) in enumerate((("detected", 1.6), ("labeled", 0.4))):
                        plan.jobs.append(
                            ImageJob(
                                f"{variant}/{folder}/{pid:04d}_c{cam}_{first[cam] + i}.png",
                                identity_key(stream, PERSON, pid),
                                cam,
                                (PERSON, pid, cam, i),
                                crop_key=(PERSON, pid, cam, i, 1 + v),
                                crop_jitter=jitter,
                            )
                        )
    return plan


def plan_msmt17(o: SyntheticOptions) -> Plan:
    stream = o.spec.stream
    rng = plan_rng(o.seed, stream)
    v2 = o.version == "v2"
    dirs = {"train": "mask_train_v2" if v2 else "train", "test": "mask_test_v2" if v2 else "test"}
    cams = list(range(1, 16))
    plan = Plan()
    lists: dict[str, list[str]] = {"train": [], "val": [], "query": [], "gallery": []}
    for split, n_ids, base in (("train", o.num_train_ids, 0), ("test", o.num_test_ids, 1 << 20)):
        pids = list(range(n_ids))  # MSMT17 numbers train and test ids from 0 separately
        for pid, counts in _person_tracks(rng, pids, cams, (2, 5), o.images_per_camera).items():
            local = base + pid
            session = _MSMT_DATES[int(rng.integers(4))] + _MSMT_TIMES[int(rng.integers(3))]
            queries = select_queries(rng, counts, 0.5) if split == "test" else {}
            n_total = sum(counts.values())
            k = 0
            n_val = 0
            for cam, n in counts.items():
                for i in range(n):
                    seq, tail = int(rng.integers(0, 10_000)), int(rng.random() < 0.2)
                    rel = f"{pid:04d}/{pid:04d}_{k:03d}_{cam:02d}_{session}_{seq:04d}_{tail}.jpg"
                    k += 1
                    plan.jobs.append(
                        ImageJob(
                            f"{dirs[split]}/{rel}",
                            identity_key(stream, PERSON, local),
                            cam,
                            (PERSON, local, cam, i),
                            face_mask=v2,
                        )
                    )
                    if split == "train":
                        to_val = rng.random() < 0.1 and n_val + 1 < n_total
                        n_val += to_val
                        lists["val" if to_val else "train"].append(f"{rel} {pid}")
                    else:
                        lists["query" if queries.get(cam) == i else "gallery"].append(
                            f"{rel} {pid}"
                        )
    for name, lines in lists.items():
        plan.texts[f"list_{name}.txt"] = "".join(line + "\n" for line in lines)
    return plan


_OWN_SPLITS = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}


def _market_jobs_by_split(o: SyntheticOptions) -> list[tuple[ImageJob, str, str]]:
    """(job, split, file name) of the Market-1501 plan for the same options (no junk)."""
    out = []
    for job in plan_market1501(o).jobs:
        folder, name = job.relpath.split("/")
        out.append((job, _OWN_SPLITS[folder], name))
    return out


def plan_folders(o: SyntheticOptions) -> Plan:
    plan = Plan()
    for job, split, name in _market_jobs_by_split(o):
        pid_text = name.split("_")[0]
        plan.jobs.append(replace(job, relpath=f"{split}/{pid_text}/{name}"))
    return plan


def plan_manifest(o: SyntheticOptions) -> Plan:
    plan = Plan()
    rows = ["path,pid,camid,modality,split"]
    for job, split, name in _market_jobs_by_split(o):
        relpath = f"images/{split}/{name}"
        plan.jobs.append(replace(job, relpath=relpath))
        pid, camera = name.split("_")[:2]
        rows.append(f"{relpath},{int(pid)},{int(camera[1]) - 1},visible,{split}")
    plan.texts["manifest.csv"] = "".join(row + "\n" for row in rows)
    return plan
