"""What a dataset writer produces: a list of image jobs plus the text files of the layout.

A layout planner (layouts_single.py, layouts_vi.py) decides every file name, identity, camera and
split sequentially in the main process (cheap, deterministic); the images are then rendered by
``render_job`` in any order and in any number of processes. Each job carries the key of its own
random generator ``(seed, *key)``, so its bytes never depend on the order or on the workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from reid_pipeline.data.synthetic.identity import cached_identity
from reid_pipeline.data.synthetic.render import render_image
from reid_pipeline.data.synthetic.scene import cached_camera, sample_scene, track_view

# roles inside an image key
PERSON, DISTRACTOR, JUNK = 0, 1, 2
_PLAN_STREAM = 0x91A


@dataclass(frozen=True)
class ImageJob:
    relpath: str  # relative to the dataset folder, "/" separated
    identity: int  # identity key (attributes)
    camera: int  # camera style index within the dataset's stream
    key: tuple[int, ...]  # per-image generator key (the seed is prepended)
    sensor: str = "visible"  # visible | thermal | nir
    crop: str = "person"  # person | partial (distractor) | junk
    place: int | None = None  # background place (default: the camera's own)
    view_camera: int | None = None  # camera whose geometry / views drive the scene (RegDB pairs)
    view: str | None = None  # forced viewpoint (RegDB names carry it)
    crop_key: tuple[int, ...] | None = None  # separate box-jitter generator (CUHK03 variants)
    crop_jitter: float = 1.0
    face_mask: bool = False  # MSMT17-V2 anonymised faces
    low_light: bool = False  # LLCM visible cameras


@dataclass
class Plan:
    jobs: list[ImageJob] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # relpath -> file content
    binaries: dict[str, bytes] = field(default_factory=dict)
    copies: dict[str, str] = field(default_factory=dict)  # relpath -> rendered relpath it copies


@dataclass(frozen=True)
class RenderSettings:
    seed: int
    stream: int  # dataset stream: separates the cameras / identities of different layouts
    size: tuple[int, int]  # (height, width)
    sharing: float
    occlusion_prob: float
    blur: float
    illumination: tuple[float, float]
    jpeg_quality: int


def plan_rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, _PLAN_STREAM, stream])


def identity_key(stream: int, role: int, local: int) -> int:
    """Identity keys never collide across datasets, roles (person / distractor / junk) or ids."""
    return (stream << 40) | (role << 32) | local


def render_job(job: ImageJob, settings: RenderSettings) -> np.ndarray:
    """The (H, W, 3) uint8 image of one job."""
    seed = settings.seed
    ident = cached_identity(seed, job.identity, settings.sharing)
    low = job.low_light and job.sensor == "visible"
    camera = cached_camera(
        seed, settings.stream, job.camera, sensor=job.sensor, low_light=low, place=job.place
    )
    geometry = camera
    if job.view_camera is not None:
        geometry = cached_camera(
            seed, settings.stream, job.view_camera, sensor="visible", low_light=False, place=None
        )
    view = track_view(seed, job.identity, geometry)
    if job.view is not None:
        view = (job.view, view[1])
    rng = np.random.default_rng([seed, settings.stream, *job.key])
    crop_rng = None
    if job.crop_key is not None:
        crop_rng = np.random.default_rng([seed, settings.stream, *job.crop_key])
    scene = sample_scene(
        rng,
        geometry,
        view=view,
        crop=job.crop,
        occlusion_prob=settings.occlusion_prob,
        blur=settings.blur,
        illumination=settings.illumination,
        crop_jitter=job.crop_jitter,
        crop_rng=crop_rng,
        seed=seed,
    )
    if job.view is not None and scene.view != job.view:
        scene = dataclasses.replace(scene, view=job.view)
    return render_image(ident, scene, camera, settings.size, face_mask=job.face_mask)


def split_ids(
    rng: np.random.Generator, n_train: int, n_test: int, *, extra: int = 0, first: int = 1
) -> tuple[list[int], list[int], list[int]]:
    """Disjoint, interleaved pid sets drawn from ``first ..``, as in the real releases (Market's
    train ids are 2, 7, 10, ... and its test ids 1, 3, 4, ...); ``extra`` ids for distractors."""
    pool = np.arange(first, first + n_train + n_test + extra)
    perm = rng.permutation(pool)
    train = sorted(int(p) for p in perm[:n_train])
    test = sorted(int(p) for p in perm[n_train : n_train + n_test])
    rest = sorted(int(p) for p in perm[n_train + n_test :])
    return train, test, rest


def pick_cameras(
    rng: np.random.Generator, cameras: list[int], k_range: tuple[int, int]
) -> list[int]:
    k = int(rng.integers(k_range[0], min(k_range[1], len(cameras)) + 1))
    return sorted(int(c) for c in rng.choice(cameras, size=k, replace=False))


def count(rng: np.random.Generator, ipc: tuple[int, int]) -> int:
    return int(rng.integers(ipc[0], ipc[1] + 1))


def select_queries(
    rng: np.random.Generator, counts: dict[int, int], p_query: float
) -> dict[int, int]:
    """Which image of which camera becomes a query: at most one per camera, each camera with
    probability ``p_query``, such that every query still has a gallery image of the same pid in
    ANOTHER camera. Returns {camera: index of the query image}; empty only if impossible."""
    cams = sorted(c for c, n in counts.items() if n > 0)
    if len(cams) < 2:
        return {}
    chosen = [c for c in cams if rng.random() < p_query]
    if not chosen:
        chosen = [cams[int(rng.integers(len(cams)))]]

    def gallery_left(c: int, q: list[int]) -> int:
        return counts[c] - (1 if c in q else 0)

    changed = True
    while changed:  # drop queries whose pid would have no gallery image in another camera
        changed = False
        for c in list(chosen):
            if not any(gallery_left(o, chosen) > 0 for o in cams if o != c):
                chosen.remove(c)
                changed = True
    if not chosen:
        chosen = [cams[0]]  # the other cameras then keep all their images
    return {c: int(rng.integers(counts[c])) for c in chosen}
