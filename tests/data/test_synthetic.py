"""The synthetic generator writes the real dataset layouts: names, folders, split / index files,
determinism, atomic writing and option validation."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from reid_pipeline.data import generate_synthetic
from reid_pipeline.data.synthetic import LAYOUTS, STAMP_NAME, resolve_options, writer

ALL_LAYOUTS = sorted(LAYOUTS)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Every layout generated once with the tiny preset (shared by the read-only tests)."""
    root = tmp_path_factory.mktemp("synthetic")
    out = {
        name: generate_synthetic(root, name, preset="tiny", seed=3, progress=False)
        for name in ALL_LAYOUTS
    }
    out["msmt17_v2"] = generate_synthetic(
        root, "msmt17", preset="tiny", seed=3, version="v2", progress=False
    )
    return out


def _files(folder: Path) -> list[str]:
    """Files of the layout (the synthetic.json options stamp left out)."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() != STAMP_NAME
    )


def _entries(folder: Path) -> list[str]:
    """Names directly in ``folder``, sorted (the synthetic.json options stamp left out)."""
    return sorted(p.name for p in folder.iterdir() if p.name != STAMP_NAME)


def _digest(folder: Path) -> dict[str, str]:
    return {rel: hashlib.sha256((folder / rel).read_bytes()).hexdigest() for rel in _files(folder)}


def _lines(path: Path) -> list[str]:
    text = path.read_text()
    assert text.endswith("\n")
    return text.splitlines()


# ----------------------------------------------------------------------------- single-modality

MARKET = re.compile(r"^(-1|\d{4})_c([1-6])s([1-6])_(\d{6})_(\d{2})\.jpg$")


def test_market1501_layout(tiny):
    folder = tiny["market1501"]
    assert folder.name == "Market-1501-v15.09.15"
    assert (folder / STAMP_NAME).is_file()
    assert _entries(folder) == [
        "bounding_box_test",
        "bounding_box_train",
        "query",
    ]
    parsed = {}
    for sub in ("bounding_box_train", "bounding_box_test", "query"):
        names = [p.name for p in (folder / sub).iterdir()]
        assert names
        for name in names:
            match = MARKET.match(name)
            assert match, f"{sub}/{name} does not follow the Market-1501 pattern"
            assert re.match(r"([-\d]+)_c(\d)", name)  # the pattern docs/datasets.md parses with
        parsed[sub] = [(int(MARKET.match(n)[1]), int(MARKET.match(n)[2])) for n in names]
    gallery_pids = [p for p, _ in parsed["bounding_box_test"]]
    assert gallery_pids.count(-1) == 2
    assert gallery_pids.count(0) == 3
    assert all(p not in (-1, 0) for p, _ in parsed["query"] + parsed["bounding_box_train"])
    train_ids = {p for p, _ in parsed["bounding_box_train"]}
    test_ids = {p for p, _ in parsed["query"]}
    assert len(train_ids) == 4
    assert len(test_ids) == 4
    assert not train_ids & test_ids
    for pid, cam in parsed["query"]:  # every query has its pid in the gallery in ANOTHER camera
        assert any(p == pid and c != cam for p, c in parsed["bounding_box_test"])
    train_cams = defaultdict(set)
    for pid, cam in parsed["bounding_box_train"]:
        train_cams[pid].add(cam)
    assert all(len(c) >= 2 for c in train_cams.values())
    image = Image.open(next((folder / "query").iterdir()))
    assert image.format == "JPEG"
    assert image.size == (64, 128)
    assert image.mode == "RGB"


def test_dukemtmc_layout(tiny):
    folder = tiny["dukemtmc"]
    assert folder.name == "DukeMTMC-reID"
    pattern = re.compile(r"^(\d{4})_c([1-8])_f(\d{7})\.jpg$")
    parsed = {}
    for sub in ("bounding_box_train", "bounding_box_test", "query"):
        names = [p.name for p in (folder / sub).iterdir()]
        assert names, sub
        assert all(pattern.match(n) for n in names), sub
        parsed[sub] = [(int(pattern.match(n)[1]), int(pattern.match(n)[2])) for n in names]
    query_ids = {p for p, _ in parsed["query"]}
    gallery_only = {p for p, _ in parsed["bounding_box_test"]} - query_ids
    assert len(gallery_only) == 2  # Duke's distractors: gallery-only identities
    assert not {p for p, _ in parsed["bounding_box_train"]} & ({p for p, _ in parsed["query"]})
    for pid, cam in parsed["query"]:
        assert any(p == pid and c != cam for p, c in parsed["bounding_box_test"])


def test_cuhk03_layout_has_both_variants_of_the_same_photographs(tiny):
    folder = tiny["cuhk03"]
    assert folder.name == "cuhk03-np"
    pattern = re.compile(r"^(\d{4})_c([12])_(\d+)\.png$")
    detected, labeled = _files(folder / "detected"), _files(folder / "labeled")
    assert detected == labeled
    assert detected
    assert all(pattern.match(Path(f).name) for f in detected)
    assert {f.split("/")[0] for f in detected} == {
        "bounding_box_train",
        "bounding_box_test",
        "query",
    }
    queries = [pattern.match(Path(f).name) for f in detected if f.startswith("query/")]
    per_id = defaultdict(set)
    for q in queries:
        per_id[q[1]].add(q[2])
    assert per_id
    assert all(cams == {"1", "2"} for cams in per_id.values())
    name = next(f for f in detected if f.startswith("bounding_box_train/"))
    a = np.asarray(Image.open(folder / "detected" / name)).astype(int)
    b = np.asarray(Image.open(folder / "labeled" / name)).astype(int)
    assert Image.open(folder / "detected" / name).format == "PNG"
    assert a.shape == b.shape
    assert np.abs(a - b).mean() > 1.0


@pytest.mark.parametrize(
    ("key", "image_dirs"),
    [("msmt17", ("train", "test")), ("msmt17_v2", ("mask_train_v2", "mask_test_v2"))],
)
def test_msmt17_layout_and_lists(tiny, key, image_dirs):
    folder = tiny[key]
    assert folder.name == ("MSMT17_V2" if key.endswith("v2") else "MSMT17_V1")
    assert _entries(folder) == sorted(
        [*image_dirs, "list_gallery.txt", "list_query.txt", "list_train.txt", "list_val.txt"]
    )
    line = re.compile(
        r"^(\d{4})/(\d{4})_(\d{3})_(\d{2})_\d{4}(morning|noon|afternoon)_\d{4}_\d\.jpg (\d+)$"
    )
    listed = {}
    for name, image_dir in (("train", 0), ("val", 0), ("query", 1), ("gallery", 1)):
        rows = _lines(folder / f"list_{name}.txt")
        for row in rows:
            m = line.match(row)
            assert m, f"list_{name}.txt: {row!r}"
            assert m[1] == m[2]
            assert int(m[6]) == int(m[1])
            assert 1 <= int(m[4]) <= 15
            assert (folder / image_dirs[image_dir] / row.split(" ")[0]).is_file()
        listed[name] = {r.split(" ")[0] for r in rows}
    train_files = set(_files(folder / image_dirs[0]))
    test_files = set(_files(folder / image_dirs[1]))
    assert listed["train"] | listed["val"] == train_files
    assert not listed["train"] & listed["val"]
    assert listed["query"] | listed["gallery"] == test_files
    assert listed["query"]
    assert {f.split("/")[0] for f in train_files} == {f"{i:04d}" for i in range(4)}  # from 0000


def test_msmt17_v2_masks_only_the_faces(tiny):
    """V1 and V2 of one seed show the same photographs; V2 greys the head out."""
    v1, v2 = tiny["msmt17"], tiny["msmt17_v2"]
    rel = _lines(v1 / "list_train.txt")[0].split(" ")[0]
    a = np.asarray(Image.open(v1 / "train" / rel)).astype(int)
    b = np.asarray(Image.open(v2 / "mask_train_v2" / rel)).astype(int)
    diff = np.abs(a - b).sum(axis=(1, 2))  # per row
    assert diff[: a.shape[0] // 3].sum() > 500  # the head region changed ...
    assert diff[a.shape[0] // 2 :].sum() < 0.05 * diff.sum()  # ... the body did not


# ----------------------------------------------------------------------------- visible-infrared


def test_sysu_mm01_layout_and_exp_files(tiny):
    folder = tiny["sysu_mm01"]
    assert folder.name == "SYSU-MM01"
    assert _entries(folder) == [*(f"cam{i}" for i in range(1, 7)), "exp"]
    ids = {}
    for name in ("train_id", "val_id", "test_id"):
        text = (folder / "exp" / f"{name}.txt").read_text()
        assert re.fullmatch(r"\d+(,\d+)*\n", text), f"{name}.txt: {text!r}"
        ids[name] = [int(x) for x in text.strip().split(",")]
    assert len(ids["train_id"]) + len(ids["val_id"]) == 4
    assert len(ids["test_id"]) == 3
    assert not set(ids["test_id"]) & set(ids["train_id"] + ids["val_id"])
    images = defaultdict(lambda: defaultdict(list))  # pid -> cam -> names
    for rel in _files(folder):
        if rel.startswith("exp/"):
            continue
        m = re.fullmatch(r"cam([1-6])/(\d{4})/(\d{4})\.jpg", rel)
        assert m, rel
        images[int(m[2])][int(m[1])].append(int(m[3]))
    for cams in images.values():
        for numbers in cams.values():
            assert sorted(numbers) == list(range(1, len(numbers) + 1))  # NNNN from 0001
    for pid in ids["test_id"]:
        cams = images[pid]
        assert cams.keys() & {3, 6}
        assert cams.keys() & {1, 2}
        assert cams.keys() & {4, 5}
    for pid in ids["train_id"] + ids["val_id"]:
        assert images[pid].keys() & {3, 6}
        assert images[pid].keys() & {1, 2, 4, 5}
    ir = np.asarray(Image.open(next((folder / "cam3").rglob("*.jpg"))).convert("RGB"))
    vis = np.asarray(Image.open(next((folder / "cam1").rglob("*.jpg"))).convert("RGB"))
    assert np.array_equal(ir[..., 0], ir[..., 1])
    assert np.array_equal(ir[..., 0], ir[..., 2])
    assert not np.array_equal(vis[..., 0], vis[..., 2])
    # the official-kit permutation file matches the image counts
    perm = scipy.io.loadmat(folder / "exp" / "rand_perm_cam.mat")["rand_perm_cam"]
    assert perm.shape == (6, 1)
    for pid, cams in images.items():
        for cam in range(1, 7):
            entry = perm[cam - 1, 0][pid - 1, 0]
            assert entry.shape == (10, len(cams.get(cam, [])))
            for row in entry:
                assert sorted(row) == list(range(1, entry.shape[1] + 1))


def test_regdb_layout_and_all_ten_trials(tiny):
    folder = tiny["regdb"]
    assert folder.name == "RegDB"
    name = re.compile(r"^(female|male)_(front|back)_([vt])_(\d{5})_(\d+)\.bmp$")
    per_pid = defaultdict(lambda: {"Visible": [], "Thermal": []})
    for rel in _files(folder):
        if rel.startswith("idx/"):
            continue
        modality, pid, file = rel.split("/")
        m = name.match(file)
        assert m, rel
        assert m[5] == pid, rel
        assert m[3] == ("v" if modality == "Visible" else "t"), rel
        per_pid[int(pid)][modality].append(file)
    assert sorted(per_pid) == [1, 2, 3, 4]
    for files in per_pid.values():
        assert len(files["Visible"]) == len(files["Thermal"]) == 10
        assert sorted(f.replace("_v_", "_t_") for f in files["Visible"]) == sorted(files["Thermal"])
    idx = sorted(p.name for p in (folder / "idx").iterdir())
    assert idx == sorted(
        f"{s}_{m}_{t}.txt"
        for s in ("train", "test")
        for m in ("visible", "thermal")
        for t in range(1, 11)
    )
    splits = set()
    for trial in range(1, 11):
        ids = {}
        for split in ("train", "test"):
            for modality, folder_name in (("visible", "Visible"), ("thermal", "Thermal")):
                rows = _lines(folder / "idx" / f"{split}_{modality}_{trial}.txt")
                pids, labels = [], []
                for row in rows:
                    path, label = row.split(" ")
                    parts = path.split("/")
                    assert parts[0] == folder_name, row
                    assert (folder / path).is_file(), row
                    pids.append(int(parts[1]))
                    labels.append(int(label))
                order = sorted(set(pids))
                assert labels == [order.index(p) for p in pids]  # 0-based, ascending pid order
                assert len(rows) == 10 * len(order)
                ids[split, modality] = order
        assert ids["train", "visible"] == ids["train", "thermal"]
        assert ids["test", "visible"] == ids["test", "thermal"]
        assert len(ids["train", "visible"]) == len(ids["test", "visible"]) == 2
        assert not set(ids["train", "visible"]) & set(ids["test", "visible"])
        splits.add(tuple(ids["train", "visible"]))
    assert len(splits) > 1  # each trial draws its own split
    th = np.asarray(Image.open(folder / "Thermal" / "1" / per_pid[1]["Thermal"][0]))
    assert th.ndim == 3
    assert np.array_equal(th[..., 0], th[..., 2])
    assert Image.open(folder / "Visible" / "1" / per_pid[1]["Visible"][0]).format == "BMP"


def test_llcm_layout_idx_and_test_folders(tiny):
    folder = tiny["llcm"]
    assert folder.name == "LLCM"
    name = re.compile(r"^(\d{4})_c(\d{2})_s(\d{6})_f(\d{4})_(vis|nir)\.jpg$")
    test_ids = [int(x) for x in (folder / "idx" / "test_id.txt").read_text().strip().split(",")]
    assert len(test_ids) == 3
    labels_by_pid = {}
    listed = {}
    for list_name in ("train_vis", "train_nir", "test_vis", "test_nir"):
        rows = _lines(folder / "idx" / f"{list_name}.txt")
        mod = list_name.split("_")[1]
        pids, labels, paths = [], [], []
        for row in rows:
            path, label = row.split(" ")
            parts = path.split("/")
            m = name.match(parts[-1])
            assert m, row
            assert parts[0] == mod, row
            assert m[5] == mod, row
            assert parts[1] == m[1], row
            assert (folder / path).is_file()
            assert mod == "vis" or int(m[2]) != 3  # LLCM has no near-IR camera 3
            pids.append(int(m[1]))
            labels.append(int(label))
            paths.append(path)
        order = sorted(set(pids))
        assert labels == [order.index(p) for p in pids]
        labels_by_pid[list_name] = dict(zip(pids, labels, strict=True))
        listed[list_name] = paths
        split_ids = set(order)
        assert (split_ids == set(test_ids)) == list_name.startswith("test")
    assert labels_by_pid["train_vis"] == labels_by_pid["train_nir"]
    # test images again, byte-identical, in test_<mod>/cam<k>/<PPPP>/
    for mod in ("vis", "nir"):
        copies = _files(folder / f"test_{mod}")
        assert len(copies) == len(listed[f"test_{mod}"])
        for rel in copies:
            cam_dir, pid_dir, file = rel.split("/")
            m = name.match(file)
            assert cam_dir == f"cam{int(m[2])}"
            assert pid_dir == m[1]
            assert int(m[1]) in test_ids
            original = folder / mod / pid_dir / file
            assert original.read_bytes() == (folder / f"test_{mod}" / rel).read_bytes()
    nir = np.asarray(Image.open(folder / listed["train_nir"][0]).convert("RGB"))
    assert np.array_equal(nir[..., 0], nir[..., 1])
    assert Image.open(folder / listed["train_vis"][0]).size == (48, 128)


# ----------------------------------------------------------------------------- behaviour


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, tiny):
    again = generate_synthetic(tmp_path / "a", "market1501", preset="tiny", seed=3, progress=False)
    assert _digest(again) == _digest(tiny["market1501"])
    other = generate_synthetic(tmp_path / "b", "market1501", preset="tiny", seed=4, progress=False)
    a, b = _digest(again), _digest(other)
    assert a != b
    common = a.keys() & b.keys()
    assert all(a[k] != b[k] for k in common)


def test_worker_processes_do_not_change_the_bytes(tmp_path, tiny):
    parallel = generate_synthetic(
        tmp_path, "sysu_mm01", preset="tiny", seed=3, workers=2, num_train_ids=8, progress=False
    )
    serial = generate_synthetic(
        tmp_path / "serial", "sysu_mm01", preset="tiny", seed=3, num_train_ids=8, progress=False
    )
    assert len(_files(parallel)) > 64  # more than one chunk, so both workers render
    assert _digest(parallel) == _digest(serial)


def test_identity_consistency_across_cameras():
    """Images of one identity share attribute-driven colour statistics more than two identities
    do: the mean colour of the body region, compared across different cameras."""
    from reid_pipeline.data.synthetic import ImageJob, render_job, render_settings

    settings = render_settings(resolve_options("market1501", seed=11))
    feats, pids = [], []
    for pid in range(12):
        for cam in range(1, 6):
            job = ImageJob("x.jpg", 1000 + pid, cam, (0, pid, cam, 0))
            img = render_job(job, settings).astype(np.float32)
            feats.append(img[30:110, 20:44].reshape(-1, 3).mean(0))
            pids.append(pid)
    feats, pids = np.asarray(feats), np.asarray(pids)
    dist = np.linalg.norm(feats[:, None] - feats[None], axis=-1)
    same = pids[:, None] == pids[None]
    off_diag = ~np.eye(len(pids), dtype=bool)
    intra, inter = dist[same & off_diag].mean(), dist[~same].mean()
    assert intra < 0.7 * inter


def test_progress_bar_runs(tmp_path, capsys):
    out = generate_synthetic(tmp_path, "regdb", preset="tiny", progress=True)
    assert (out / "idx" / "test_thermal_10.txt").is_file()


def test_existing_folder_needs_overwrite(tmp_path):
    out = generate_synthetic(tmp_path, "dukemtmc", preset="tiny", progress=False)
    marker = out / "bounding_box_train" / "keep.txt"
    marker.write_text("old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_synthetic(tmp_path, "dukemtmc", preset="tiny", progress=False)
    assert marker.exists()
    again = generate_synthetic(tmp_path, "dukemtmc", preset="tiny", progress=False, overwrite=True)
    assert again == out
    assert not marker.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["DukeMTMC-reID"]  # no temporary left over


def test_a_failure_midway_leaves_no_dataset(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_save = writer.save_image

    def flaky(array, path, quality):
        calls["n"] += 1
        if calls["n"] == 10:
            raise OSError("disk full (simulated)")
        real_save(array, path, quality)

    monkeypatch.setattr(writer, "save_image", flaky)
    with pytest.raises(OSError, match="simulated"):
        generate_synthetic(tmp_path, "market1501", preset="tiny", progress=False)
    assert calls["n"] == 10
    assert list(tmp_path.iterdir()) == []  # neither a final folder nor a temporary one
    # replacing an existing dataset: a failure keeps the old one intact
    monkeypatch.setattr(writer, "save_image", real_save)
    old = generate_synthetic(tmp_path, "market1501", preset="tiny", progress=False)
    before = _digest(old)
    calls["n"] = 0
    monkeypatch.setattr(writer, "save_image", flaky)
    with pytest.raises(OSError, match="simulated"):
        generate_synthetic(
            tmp_path, "market1501", preset="tiny", seed=9, overwrite=True, progress=False
        )
    assert _digest(old) == before
    assert [p.name for p in tmp_path.iterdir()] == ["Market-1501-v15.09.15"]


@pytest.mark.parametrize(
    ("layout", "options", "message"),
    [
        ("market", {}, "unknown layout 'market'"),
        ("market1501", {"preset": "huge"}, "unknown preset"),
        ("market1501", {"seed": -1}, "seed must be >= 0"),
        ("market1501", {"seed": 1.5}, "seed must be an integer"),
        ("market1501", {"num_train_ids": 0}, "num_train_ids must be in"),
        ("market1501", {"num_ids": 10, "num_train_ids": 3, "num_test_ids": 3}, "disagrees"),
        ("market1501", {"images_per_camera": (3, 1)}, "images_per_camera must be"),
        ("market1501", {"images_per_camera": 2}, "images_per_camera must be a pair"),
        ("market1501", {"image_size": (8, 64)}, "image_size"),
        ("market1501", {"occlusion_prob": 1.5}, "occlusion_prob must be in"),
        ("market1501", {"blur": -1}, "blur must be in"),
        ("market1501", {"illumination": (1.2, 0.5)}, "illumination must be"),
        ("market1501", {"attribute_sharing": "high"}, "attribute_sharing must be a number"),
        ("market1501", {"version": "v2"}, "version applies to msmt17 only"),
        ("msmt17", {"version": "v3"}, "version must be 'v1' or 'v2'"),
        ("dukemtmc", {"num_junk": 5}, "num_junk is not used by layout 'dukemtmc'"),
        ("sysu_mm01", {"num_distractors": 5}, "num_distractors is not used"),
        ("regdb", {"num_train_ids": 3, "num_test_ids": 5}, "splits its ids in half"),
        ("regdb", {"num_ids": 7}, "num_ids must be even"),
        ("market1501", {"jpeg_quality": 0}, "jpeg_quality must be in"),
        ("sysu_mm01", {"num_train_ids": 9000, "num_test_ids": 1000}, "exceeds 9999"),
        ("regdb", {"num_ids": 400, "images_per_camera": (300, 300)}, "5 digits"),
        ("market1501", {"workers": 0}, "workers must be in"),
        ("folders", {"num_junk": 2}, "num_junk is not used by layout 'folders'"),
        ("manifest", {"version": "v2"}, "version applies to msmt17 only"),
    ],
)
def test_bad_options_raise_one_clear_error(tmp_path, layout, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_synthetic(tmp_path, layout, progress=False, **options)
    assert list(tmp_path.iterdir()) == []  # validated before anything is written


def test_num_ids_splits_by_the_layout_share():
    assert (
        resolve_options("market1501", num_ids=10).num_train_ids,
        resolve_options("market1501", num_ids=10).num_test_ids,
    ) == (5, 5)
    o = resolve_options("sysu_mm01", num_ids=9, num_test_ids=3)
    assert (o.num_train_ids, o.num_test_ids) == (6, 3)
    assert resolve_options("msmt17", version="v2").folder == "MSMT17_V2"
    assert resolve_options("llcm").image_size == (128, 48)
    assert resolve_options("market1501", images_per_camera=[2, 3]).images_per_camera == (2, 3)


def test_default_presets_are_sized_for_the_cpu_demo():
    """Counts of the default market1501 / sysu_mm01 plans (planning only, nothing rendered)."""
    from reid_pipeline.data.synthetic import build_plan

    market = build_plan(resolve_options("market1501"))
    split = defaultdict(int)
    for job in market.jobs:
        split[job.relpath.split("/")[0]] += 1
    assert 1000 <= split["bounding_box_train"] <= 2000
    assert 200 <= split["query"] <= 800
    assert 800 <= split["bounding_box_test"] <= 2000
    sysu = build_plan(resolve_options("sysu_mm01"))
    test_ids = {int(x) for x in sysu.texts["exp/test_id.txt"].strip().split(",")}
    train = [j for j in sysu.jobs if int(j.relpath.split("/")[1]) not in test_ids]
    queries = [
        j for j in sysu.jobs if int(j.relpath.split("/")[1]) in test_ids and j.sensor != "visible"
    ]
    assert 1000 <= len(train) <= 2500
    assert 150 <= len(queries) <= 800


# ----------------------------------------------------------------------------- round trip


def _load_dataset():
    try:
        from reid_pipeline.data.loaders import load_dataset
    except ModuleNotFoundError:  # the loaders are written in parallel; only their absence skips
        pytest.skip("reid_pipeline.data.loaders is not in the tree yet")
    return load_dataset


def _count(folder: Path, sub: str, *, junk: bool = False) -> int:
    return sum(1 for p in (folder / sub).iterdir() if junk or not p.name.startswith("-1_"))


@pytest.mark.parametrize("layout", ["market1501", "dukemtmc"])
def test_round_trip_market_style(tiny, layout):
    folder = tiny[layout]
    splits = _load_dataset()(layout, folder.parent, verify_images=True)
    assert len(splits.train) == _count(folder, "bounding_box_train")
    assert len(splits.query) == _count(folder, "query")
    assert len(splits.gallery) == _count(folder, "bounding_box_test")
    assert {r.pid for r in splits.train} == set(range(4))  # relabelled
    cams = 6 if layout == "market1501" else 8
    assert all(0 <= r.camid < cams and r.modality == 0 for r in splits.query + splits.gallery)
    if layout == "market1501":
        assert sum(r.pid == 0 for r in splits.gallery) == 3  # distractors kept, junk dropped


@pytest.mark.parametrize("variant", ["detected", "labeled"])
def test_round_trip_cuhk03(tiny, variant):
    folder = tiny["cuhk03"] / variant
    splits = _load_dataset()("cuhk03", tiny["cuhk03"].parent, variant=variant)
    assert len(splits.train) == _count(folder, "bounding_box_train")
    assert len(splits.query) == _count(folder, "query")
    assert len(splits.gallery) == _count(folder, "bounding_box_test")
    assert {r.camid for r in splits.query} == {0, 1}


@pytest.mark.parametrize(("key", "version"), [("msmt17", "v1"), ("msmt17_v2", "v2")])
def test_round_trip_msmt17(tiny, key, version):
    folder = tiny[key]
    splits = _load_dataset()("msmt17", folder.parent, version=version, verify_images=True)
    assert len(splits.train) == len(_lines(folder / "list_train.txt"))
    assert len(splits.query) == len(_lines(folder / "list_query.txt"))
    assert len(splits.gallery) == len(_lines(folder / "list_gallery.txt"))
    combined = _load_dataset()("msmt17", folder.parent, version=version, combine_val=True)
    assert len(combined.train) == len(splits.train) + len(_lines(folder / "list_val.txt"))


def test_round_trip_sysu_mm01(tiny):
    folder = tiny["sysu_mm01"]
    splits = _load_dataset()("sysu_mm01", folder.parent, verify_images=True)
    test_ids = [int(x) for x in (folder / "exp" / "test_id.txt").read_text().strip().split(",")]
    assert sorted(splits.info["test_ids"]) == sorted(test_ids)
    n_test_ir = sum(
        len(list((folder / f"cam{c}" / f"{p:04d}").glob("*.jpg"))) for c in (3, 6) for p in test_ids
    )
    n_test_vis = sum(
        len(list((folder / f"cam{c}" / f"{p:04d}").glob("*.jpg")))
        for c in (1, 2, 4, 5)
        for p in test_ids
    )
    n_all = sum(1 for _ in folder.glob("cam*/*/*.jpg"))
    assert len(splits.query) == n_test_ir
    assert len(splits.gallery) == n_test_vis
    assert len(splits.train) == n_all - n_test_ir - n_test_vis
    assert {r.camid for r in splits.query} <= {2, 5}
    assert all(r.modality == 1 for r in splits.query)
    assert all(r.modality == 0 for r in splits.gallery)
    assert {r.modality for r in splits.train} == {0, 1}


@pytest.mark.parametrize("trial", [1, 10])
def test_round_trip_regdb(tiny, trial):
    folder = tiny["regdb"]
    splits = _load_dataset()("regdb", folder.parent, trial=trial, verify_images=True)
    idx = folder / "idx"
    assert len(splits.train) == len(_lines(idx / f"train_visible_{trial}.txt")) + len(
        _lines(idx / f"train_thermal_{trial}.txt")
    )
    assert len(splits.query) == len(_lines(idx / f"test_thermal_{trial}.txt"))
    assert len(splits.gallery) == len(_lines(idx / f"test_visible_{trial}.txt"))
    assert {r.pid for r in splits.train} == {0, 1}


@pytest.mark.parametrize("test_source", ["lists", "folders"])
def test_round_trip_llcm(tiny, test_source):
    folder = tiny["llcm"]
    splits = _load_dataset()("llcm", folder.parent, test_source=test_source, verify_images=True)
    idx = folder / "idx"
    assert len(splits.train) == len(_lines(idx / "train_vis.txt")) + len(
        _lines(idx / "train_nir.txt")
    )
    assert len(splits.query) == len(_lines(idx / "test_nir.txt"))
    assert len(splits.gallery) == len(_lines(idx / "test_vis.txt"))
    assert all(r.modality == 1 and r.camid != 2 for r in splits.query)
    assert sorted(splits.info["test_ids"]) == sorted(
        int(x) for x in (idx / "test_id.txt").read_text().strip().split(",")
    )


def test_own_data_layouts_are_the_market_persons(tiny):
    """``folders`` and ``manifest`` hold the very pictures of the Market-1501 layout (junk left
    out): same file names, same bytes, identity folders / manifest rows matching the names."""
    market = tiny["market1501"]
    by_name = {
        p.name: p
        for sub in ("bounding_box_train", "query", "bounding_box_test")
        for p in (market / sub).iterdir()
        if not p.name.startswith("-1_")
    }
    folders = tiny["folders"]
    assert folders.name == "synthetic_folders"
    assert _entries(folders) == ["gallery", "query", "train"]
    files = _files(folders)
    assert sorted(f.split("/")[-1] for f in files) == sorted(by_name)
    split_of = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    for rel in files:
        split, identity, name = rel.split("/")
        assert name.split("_")[0] == identity
        assert by_name[name].parent.name == split_of[split]
        assert (folders / rel).read_bytes() == by_name[name].read_bytes()
    manifest = tiny["manifest"]
    assert manifest.name == "synthetic_manifest"
    rows = _lines(manifest / "manifest.csv")
    assert rows[0] == "path,pid,camid,modality,split"
    assert len(rows) - 1 == len(by_name)
    for row in rows[1:]:
        path, pid, camid, modality, split = row.split(",")
        name = path.split("/")[-1]
        assert path == f"images/{split}/{name}"
        m = MARKET.match(name)
        assert (int(pid), int(camid), modality) == (int(m[1]), int(m[2]) - 1, "visible")
        assert (manifest / path).read_bytes() == by_name[name].read_bytes()


@pytest.mark.parametrize("layout", ["folders", "manifest"])
def test_round_trip_own_data(tiny, layout):
    market = _load_dataset()("market1501", tiny["market1501"].parent)
    splits = _load_dataset()(layout, tiny[layout].parent, verify_images=True)
    assert splits.info["dataset"] == layout
    for part in ("train", "query", "gallery"):
        expected = sorted((Path(r.path).name, r.pid, r.camid) for r in market.split(part))
        got = sorted((Path(r.path).name, r.pid, r.camid) for r in splits.split(part))
        assert got == expected, part
    assert splits.info["num_query_without_gallery_identity"] == 0
