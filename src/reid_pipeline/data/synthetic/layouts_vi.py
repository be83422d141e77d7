"""Planners of the visible-infrared layouts: SYSU-MM01, RegDB, LLCM.

Folder and file names follow the real releases (docs/datasets.md):

- SYSU-MM01 (Wu et al., ICCV 2017): ``SYSU-MM01/cam{1..6}/PPPP/NNNN.jpg`` (NNNN from 0001),
  cameras 3 and 6 near-infrared, cam2 and cam3 in one room (same background);
  ``exp/{train_id,val_id,test_id}.txt``, one line of comma-separated ids. Not every id is in
  every camera, but every test id has >= 1 IR image, visible images in cam1/cam2 (indoor
  search) and in cam4/cam5 (all search), and every training id has both modalities.
  Ours, not in the real folder: ``exp/rand_perm_cam.mat`` in the format of the official
  evaluation kit's file (``rand_perm_cam{cam}{id}``: 10 rows, one per trial, each a 1-based
  permutation of that id's images in that camera), so the *official* gallery sampler also runs
  on synthetic data.
- RegDB (Nguyen et al., Sensors 2017): ``RegDB/{Visible,Thermal}/<pid>/<gender>_<view>_{v|t}_
  <NNNNN>_<pid>.bmp``, 10 co-registered visible / thermal pairs per id (one dual camera, so a
  pair shares pose and position), and ``RegDB/idx/{train,test}_{visible,thermal}_{1..10}.txt``:
  every trial splits the ids in half at random; lines ``Visible/73/female_front_v_00753_73.bmp 7``
  (path relative to RegDB/, label 0-based within that file's ids in ascending pid order).
- LLCM (Zhang & Wang, CVPR 2023): every image in ``LLCM/{vis,nir}/PPPP/PPPP_cCC_sSSSSSS_fFFFF_
  {vis,nir}.jpg`` (train and test ids); ``LLCM/idx/{train_vis,train_nir,test_vis,test_nir}.txt``
  (``<path relative to LLCM/> <label>``, paths into ``vis/`` / ``nir/`` - public loaders of the
  release read the modality from the third-last path component - label 0-based within the file's
  split in ascending pid order, the same label for both modalities); the test images again,
  byte-identical, in ``LLCM/test_{vis,nir}/cam<k>/PPPP/`` with ``idx/test_id.txt`` (one line of
  comma-separated ids), which is what the authors' (DEEN) test code lists.
  9 cameras, each a visible + near-IR pair at one place; as in the authors' test code, which lists
  no ``test_nir/cam3``, camera 3 has no near-IR images. Visible images are low-light.
"""

from __future__ import annotations

import io

import numpy as np
import scipy.io

from reid_pipeline.data.synthetic.identity import cached_identity
from reid_pipeline.data.synthetic.options import SyntheticOptions
from reid_pipeline.data.synthetic.plan import (
    PERSON,
    ImageJob,
    Plan,
    count,
    identity_key,
    pick_cameras,
    plan_rng,
)

SYSU_VISIBLE, SYSU_INFRARED = (1, 2, 4, 5), (3, 6)
LLCM_VIS_CAMERAS = tuple(range(1, 10))
LLCM_NIR_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by reid_pipeline's synthetic generator"


def _ids_line(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids) + "\n"


def _subset(rng: np.random.Generator, cams: tuple[int, ...], p: float) -> list[int]:
    chosen = [c for c in cams if rng.random() < p]
    return chosen or [int(rng.choice(cams))]


def rand_perm_mat(
    rng: np.random.Generator, counts: dict[tuple[int, int], int], max_pid: int
) -> bytes:
    """``rand_perm_cam.mat`` bytes: a 6x1 cell of (max_pid x 1) cells of 10 x n permutations."""
    outer = np.empty((6, 1), dtype=object)
    for cam in range(1, 7):
        inner = np.empty((max_pid, 1), dtype=object)
        for pid in range(1, max_pid + 1):
            n = counts.get((cam, pid), 0)
            dtype = np.uint8 if n <= 255 else np.uint16
            perms = [rng.permutation(n) + 1 for _ in range(10)]
            inner[pid - 1, 0] = np.stack(perms).astype(dtype) if n else np.zeros((10, 0), dtype)
        outer[cam - 1, 0] = inner
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"rand_perm_cam": outer})
    data = bytearray(buffer.getvalue())
    data[:116] = _MAT_HEADER.ljust(116)  # savemat stamps the time here: fixed for identical bytes
    return bytes(data)


def plan_sysu_mm01(o: SyntheticOptions) -> Plan:
    stream = o.spec.stream
    rng = plan_rng(o.seed, stream)
    total = o.num_train_ids + o.num_test_ids
    perm = [int(p) for p in rng.permutation(np.arange(1, total + 1))]
    test = sorted(perm[: o.num_test_ids])
    trainval = sorted(perm[o.num_test_ids :])
    n_val = round(0.25 * len(trainval)) if len(trainval) >= 4 else 0
    val = sorted(int(p) for p in rng.choice(trainval, size=n_val, replace=False))
    train = sorted(set(trainval) - set(val))
    plan = Plan()
    plan.texts["exp/train_id.txt"] = _ids_line(train)
    plan.texts["exp/val_id.txt"] = _ids_line(val)
    plan.texts["exp/test_id.txt"] = _ids_line(test)
    test_set = set(test)
    counts: dict[tuple[int, int], int] = {}
    for pid in range(1, total + 1):
        if pid in test_set:  # indoor and all search both need visible images of every test id
            vis = {int(rng.choice([1, 2])), int(rng.choice([4, 5]))}
            vis |= {c for c in SYSU_VISIBLE if rng.random() < 0.5}
        else:
            vis = set(_subset(rng, SYSU_VISIBLE, 0.6))
        cams = sorted(vis) + _subset(rng, SYSU_INFRARED, 0.65)
        for cam in sorted(cams):
            n = count(rng, o.images_per_camera)
            counts[cam, pid] = n
            ir = cam in SYSU_INFRARED
            for i in range(n):
                plan.jobs.append(
                    ImageJob(
                        f"cam{cam}/{pid:04d}/{i + 1:04d}.jpg",
                        identity_key(stream, PERSON, pid),
                        cam,
                        (PERSON, pid, cam, i),
                        sensor="nir" if ir else "visible",
                        place=2 if cam == 3 else None,
                    )
                )
    plan.binaries["exp/rand_perm_cam.mat"] = rand_perm_mat(rng, counts, total)
    return plan


def plan_regdb(o: SyntheticOptions) -> Plan:
    stream = o.spec.stream
    rng = plan_rng(o.seed, stream)
    pids = list(range(1, o.num_train_ids + o.num_test_ids + 1))
    plan = Plan()
    files: dict[int, tuple[list[str], list[str]]] = {}
    counter = int(rng.integers(100, 2000))
    for pid in pids:
        key = identity_key(stream, PERSON, pid)
        gender = cached_identity(o.seed, key, o.attribute_sharing).gender
        view = "front" if rng.random() < 0.5 else "back"
        vis_files, th_files = [], []
        for i in range(count(rng, o.images_per_camera)):
            counter += 1
            stem = f"{gender}_{view}_{{}}_{counter:05d}_{pid}.bmp"
            vis_files.append(f"Visible/{pid}/{stem.format('v')}")
            th_files.append(f"Thermal/{pid}/{stem.format('t')}")
            image_key = (PERSON, pid, 0, i)  # one dual camera: the pair shares its scene
            plan.jobs.append(ImageJob(vis_files[-1], key, 1, image_key, view=view))
            plan.jobs.append(
                ImageJob(
                    th_files[-1], key, 2, image_key, sensor="thermal", view_camera=1, view=view
                )
            )
        files[pid] = (vis_files, th_files)
    half = len(pids) // 2
    for trial in range(1, 11):
        order = np.random.default_rng([o.seed, stream, 0x7A1, trial]).permutation(pids)
        splits = {
            "train": sorted(int(p) for p in order[:half]),
            "test": sorted(int(p) for p in order[half:]),
        }
        for split, ids in splits.items():
            for m, modality in enumerate(("visible", "thermal")):
                lines = [
                    f"{path} {label}" for label, pid in enumerate(ids) for path in files[pid][m]
                ]
                plan.texts[f"idx/{split}_{modality}_{trial}.txt"] = "".join(x + "\n" for x in lines)
    return plan


def plan_llcm(o: SyntheticOptions) -> Plan:
    stream = o.spec.stream
    rng = plan_rng(o.seed, stream)
    total = o.num_train_ids + o.num_test_ids
    perm = [int(p) for p in rng.permutation(np.arange(1, total + 1))]
    test = sorted(perm[: o.num_test_ids])
    train = sorted(perm[o.num_test_ids :])
    plan = Plan()
    lines: dict[str, list[str]] = {
        k: [] for k in ("train_vis", "train_nir", "test_vis", "test_nir")
    }
    for split, pids in (("train", train), ("test", test)):
        for label, pid in enumerate(pids):
            key = identity_key(stream, PERSON, pid)
            for m, (mod, cams) in enumerate((("vis", LLCM_VIS_CAMERAS), ("nir", LLCM_NIR_CAMERAS))):
                for cam in pick_cameras(rng, list(cams), (2, 4)):
                    seq, frame = int(rng.integers(100_000, 300_000)), int(rng.integers(0, 5000))
                    for i in range(count(rng, o.images_per_camera)):
                        frame += int(rng.integers(5, 200))
                        name = f"{pid:04d}_c{cam:02d}_s{seq:06d}_f{frame:04d}_{mod}.jpg"
                        rel = f"{mod}/{pid:04d}/{name}"
                        lines[f"{split}_{mod}"].append(f"{rel} {label}")
                        if split == "test":  # the per-camera copy the authors' test code lists
                            plan.copies[f"test_{mod}/cam{cam}/{pid:04d}/{name}"] = rel
                        nir = mod == "nir"
                        plan.jobs.append(
                            ImageJob(
                                rel,
                                key,
                                cam + 100 * m,
                                (PERSON, pid, cam + 100 * m, i),
                                sensor="nir" if nir else "visible",
                                place=cam,
                                view_camera=cam if nir else None,
                                low_light=not nir,
                            )
                        )
    for name, rows in lines.items():
        plan.texts[f"idx/{name}.txt"] = "".join(r + "\n" for r in rows)
    plan.texts["idx/test_id.txt"] = _ids_line(test)
    return plan
