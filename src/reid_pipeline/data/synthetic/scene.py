"""Cameras and per-image scenes of the synthetic generator.

Our design (no paper). A ``CameraStyle`` is everything a fixed surveillance camera imposes on its
crops: the background (wall / floor palette, a strip of clutter four crops wide that each crop sees
a random window of), the colour cast, gain and gamma, optics blur, sensor noise, the typical person
scale, and the viewpoints it tends to see (a camera looking along a corridor sees mostly fronts and
backs, one looking across it sees sides). Infrared cameras (``sensor`` "thermal" or "nir") have a
dark, low-contrast background, their own gain, blur, white noise and a fixed column pattern.

A ``Scene`` is what changes from one crop to the next: viewpoint, person scale and position (the
detector's box jitter), walking pose, illumination, blur, and an optional occluder (a box or
another pedestrian). Scenes are drawn from a generator the caller derives from
``(seed, pid, camera, index)``, so each image is reproducible on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from reid_pipeline.data.synthetic.identity import Identity, sample_identity
from reid_pipeline.data.synthetic.raster import RGB

_CAMERA_STREAM = 0xCA
_TRACK_STREAM = 0x7C
VIEWS = ("front", "back", "side")
SENSORS = ("visible", "thermal", "nir")

WALLS: tuple[RGB, ...] = (
    (0.62, 0.60, 0.56),  # concrete
    (0.55, 0.33, 0.26),  # brick
    (0.45, 0.52, 0.58),  # glass / blue-grey
    (0.30, 0.42, 0.25),  # hedge
    (0.78, 0.74, 0.64),  # beige tiles
    (0.35, 0.35, 0.38),  # dark facade
    (0.70, 0.70, 0.72),  # light grey
)
FLOORS: tuple[RGB, ...] = (
    (0.35, 0.35, 0.36),  # asphalt
    (0.58, 0.56, 0.52),  # pavement
    (0.33, 0.45, 0.24),  # grass
    (0.70, 0.66, 0.58),  # light tiles
    (0.48, 0.40, 0.34),  # brick paving
)
CLUTTER: tuple[RGB, ...] = (
    (0.15, 0.15, 0.17),
    (0.85, 0.85, 0.82),
    (0.60, 0.15, 0.12),
    (0.20, 0.30, 0.55),
    (0.70, 0.60, 0.30),
    (0.25, 0.40, 0.25),
    (0.50, 0.50, 0.52),
)


@dataclass(frozen=True)
class CameraStyle:
    index: int
    sensor: str  # visible | thermal | nir
    wall: RGB
    floor: RGB
    horizon: float  # wall / floor boundary, fraction of the height
    clutter: tuple[
        tuple[float, float, float, float, RGB, float], ...
    ]  # x0,y0,x1,y1 (world), rgb, ir
    cast: RGB  # per-channel gains (visible)
    gain: float
    gamma: float
    light_slope: float  # vertical illumination gradient
    blur: float  # base blur sigma at 128 rows
    noise: float  # sensor noise sigma (fraction of full scale)
    scale: tuple[float, float]  # person height / crop height
    view_p: tuple[float, float, float]  # front, back, side
    ir_background: float
    ir_gain: float
    vignette: float
    fpn: float  # column fixed-pattern noise amplitude
    fpn_seed: int
    texture_seed: int  # background texture of the place


def make_camera(
    seed: int,
    stream: int,
    index: int,
    *,
    sensor: str = "visible",
    low_light: bool = False,
    place: int | None = None,
) -> CameraStyle:
    """The style of camera ``index`` of a dataset (``stream`` separates datasets).

    ``place`` (default ``index``) fixes the background: two sensors at one place (LLCM's
    visible / near-IR pairs, SYSU-MM01's cam2 and cam3 in one room) see the same wall, floor and
    clutter and differ in everything else.
    """
    if sensor not in SENSORS:
        raise ValueError(f"sensor must be one of {SENSORS}, got {sensor!r}")
    rng = np.random.default_rng([seed, _CAMERA_STREAM, stream, index if place is None else place])
    clutter = []
    for _ in range(int(rng.integers(5, 11))):
        kind = rng.integers(4)
        x0 = float(rng.uniform(0.0, 4.0))
        if kind == 0:  # pole
            w, y0, y1 = rng.uniform(0.03, 0.08), rng.uniform(0.0, 0.2), rng.uniform(0.75, 1.0)
        elif kind == 1:  # window / poster
            w, y0 = rng.uniform(0.2, 0.5), rng.uniform(0.05, 0.35)
            y1 = y0 + rng.uniform(0.12, 0.3)
        elif kind == 2:  # bench / low object
            w, y0, y1 = rng.uniform(0.3, 0.7), rng.uniform(0.62, 0.8), rng.uniform(0.82, 0.95)
        else:  # door / pillar
            w, y0, y1 = rng.uniform(0.15, 0.35), rng.uniform(0.1, 0.3), rng.uniform(0.6, 0.8)
        colour = CLUTTER[int(rng.integers(len(CLUTTER)))]
        ir = float(rng.uniform(-0.06, 0.08)) if rng.random() > 0.1 else float(rng.uniform(0.3, 0.5))
        clutter.append((x0, float(y0), x0 + float(w), float(y1), colour, ir))
    wall = WALLS[int(rng.integers(len(WALLS)))]
    floor = FLOORS[int(rng.integers(len(FLOORS)))]
    horizon = float(rng.uniform(0.45, 0.78))
    texture_seed = int(rng.integers(2**31))
    rng = np.random.default_rng([seed, _CAMERA_STREAM, stream, index, SENSORS.index(sensor) + 1])
    cast = 1.0 + rng.uniform(-0.14, 0.14, 3)
    cast = cast / cast.mean()
    gain = rng.uniform(0.3, 0.5) if low_light else rng.uniform(0.8, 1.12)
    noise = rng.uniform(0.03, 0.05) if low_light else rng.uniform(0.008, 0.022)
    lo = float(rng.uniform(0.78, 0.87))
    return CameraStyle(
        index=index,
        sensor=sensor,
        wall=wall,
        floor=floor,
        horizon=horizon,
        clutter=tuple(clutter),
        cast=(float(cast[0]), float(cast[1]), float(cast[2])),
        gain=float(gain),
        gamma=float(rng.uniform(0.85, 1.18)),
        light_slope=float(rng.uniform(-0.1, 0.25)),
        blur=float(rng.uniform(0.0, 0.7)) if sensor == "visible" else float(rng.uniform(0.6, 1.2)),
        noise=float(noise) if sensor == "visible" else float(rng.uniform(0.015, 0.035)),
        scale=(lo, lo + 0.09),
        view_p=tuple(float(p) for p in rng.dirichlet([2.0, 2.0, 1.5])),  # type: ignore[arg-type]
        ir_background=float(
            rng.uniform(0.08, 0.2) if sensor == "thermal" else rng.uniform(0.1, 0.28)
        ),
        ir_gain=float(rng.uniform(0.85, 1.1)),
        vignette=float(rng.uniform(0.2, 0.45)) if sensor == "nir" else 0.0,
        fpn=float(rng.uniform(0.004, 0.018)),
        fpn_seed=int(rng.integers(2**31)),
        texture_seed=texture_seed,
    )


@lru_cache(maxsize=256)
def cached_camera(
    seed: int, stream: int, index: int, *, sensor: str, low_light: bool, place: int | None
) -> CameraStyle:
    return make_camera(seed, stream, index, sensor=sensor, low_light=low_light, place=place)


@dataclass(frozen=True)
class Occluder:
    kind: str  # box | person
    x0: float  # fractions of the crop
    y0: float
    x1: float
    y1: float
    rgb: RGB
    ir: float
    person: Identity | None = None  # kind "person": the passer-by
    view: str = "front"
    dx: float = 0.0  # passer-by offset from the main person, fraction of the width
    scale: float = 1.0  # passer-by size relative to the main person
    in_front: bool = True


@dataclass(frozen=True)
class Scene:
    view: str  # front | back | side
    facing: int  # +1 / -1: walking direction in a side view
    scale: float  # person height / crop height (0: no person, background only)
    cx: float  # body centre, fraction of the width
    foot: float  # foot line, fraction of the height
    stride: float  # 0..1
    swing: float  # 0..1
    bg_offset: float  # window into the camera's clutter strip, 0..3
    illumination: float
    cast: RGB  # per-image colour jitter on top of the camera cast
    blur: float  # extra blur sigma at 128 rows
    noise_seed: int
    occluder: Occluder | None = None


@lru_cache(maxsize=65536)
def track_view(seed: int, identity_key: int, camera: CameraStyle) -> tuple[str, int]:
    """The viewpoint a person usually shows in one camera (the direction they walk there)."""
    rng = np.random.default_rng([seed, _TRACK_STREAM, identity_key, camera.index])
    return _draw_view(rng, camera), 1 if rng.random() < 0.5 else -1


def _draw_view(rng: np.random.Generator, camera: CameraStyle) -> str:
    cdf = np.cumsum(camera.view_p)
    return VIEWS[min(int(np.searchsorted(cdf, rng.random(), side="right")), 2)]


def sample_scene(
    rng: np.random.Generator,
    camera: CameraStyle,
    *,
    view: tuple[str, int],
    crop: str = "person",
    occlusion_prob: float = 0.1,
    blur: float = 0.6,
    illumination: tuple[float, float] = (0.75, 1.2),
    crop_jitter: float = 1.0,
    crop_rng: np.random.Generator | None = None,
    seed: int = 0,
) -> Scene:
    """One crop's scene. ``crop``: "person" (a normal detection), "partial" (a distractor-like
    bad detection cutting the body) or "junk" (background or a body fragment).

    ``crop_rng`` draws the box jitter separately (CUHK03 labeled / detected share a photo and
    differ in their boxes); by default it is ``rng``.
    """
    base_view, facing = view
    if rng.random() < 0.2:  # the person turns now and then
        base_view = _draw_view(rng, camera)
    stride, swing = float(rng.uniform(0.0, 1.0)), float(rng.uniform(0.0, 1.0))
    bg_offset = float(rng.uniform(0.0, 3.0))
    illum = float(rng.uniform(*illumination))
    cast = 1.0 + rng.uniform(-0.05, 0.05, 3)
    extra_blur = float(rng.uniform(0.0, blur)) if blur > 0 else 0.0
    noise_seed = int(rng.integers(2**62))
    occluder = None
    if crop == "person" and rng.random() < occlusion_prob:
        occluder = _occluder(rng, seed)
    crng = crop_rng if crop_rng is not None else rng
    scale = float(crng.uniform(*camera.scale)) * (
        1.0 + crop_jitter * float(crng.uniform(-0.05, 0.05))
    )
    cx = 0.5 + crop_jitter * float(crng.uniform(-0.05, 0.05))
    foot = 0.965 + crop_jitter * float(crng.uniform(-0.03, 0.03))
    if crop == "partial":
        scale *= float(crng.uniform(1.25, 1.9))
        cx += (1.0 if crng.random() < 0.5 else -1.0) * float(crng.uniform(0.15, 0.4))
        foot += float(crng.uniform(-0.35, 0.6))
    elif crop == "junk":
        if crng.random() < 0.5:
            scale = 0.0
        else:
            scale *= float(crng.uniform(1.8, 3.2))
            cx += float(crng.uniform(-0.6, 0.6))
            foot += float(crng.uniform(-0.8, 1.4))
    return Scene(
        view=base_view,
        facing=facing,
        scale=scale,
        cx=cx,
        foot=foot,
        stride=stride,
        swing=swing,
        bg_offset=bg_offset,
        illumination=illum,
        cast=(float(cast[0]), float(cast[1]), float(cast[2])),
        blur=extra_blur,
        noise_seed=noise_seed,
        occluder=occluder,
    )


def _occluder(rng: np.random.Generator, seed: int) -> Occluder:
    if rng.random() < 0.55:  # a box, car, bin... entering from the bottom or a side
        if rng.random() < 0.6:
            x0, x1 = sorted(rng.uniform(-0.3, 1.3, 2))
            x1 = max(x1, x0 + 0.5)
            y0, y1 = float(rng.uniform(0.55, 0.8)), 1.05
        else:
            side = rng.random() < 0.5
            width = float(rng.uniform(0.25, 0.45))
            x0, x1 = (-0.05, width) if side else (1.0 - width, 1.05)
            y0, y1 = float(rng.uniform(0.1, 0.5)), 1.05
        rgb = CLUTTER[int(rng.integers(len(CLUTTER)))]
        return Occluder("box", float(x0), y0, float(x1), y1, rgb, float(rng.uniform(0.15, 0.35)))
    other = sample_identity(seed, int(rng.integers(2**40)) + 2**41)
    dx = (1.0 if rng.random() < 0.5 else -1.0) * float(rng.uniform(0.35, 0.6))
    scale = float(rng.uniform(0.85, 1.15))
    view = VIEWS[int(rng.integers(3))]
    return Occluder(
        "person",
        0.0,
        0.0,
        1.0,
        1.0,
        (0.0, 0.0, 0.0),
        0.0,
        person=other,
        view=view,
        dx=dx,
        scale=scale,
        in_front=bool(rng.random() < 0.75),
    )
