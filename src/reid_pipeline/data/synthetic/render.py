"""Rendering a synthetic pedestrian crop, visible or infrared.

Our design (no paper). ``render_image`` draws the camera background, the person, the optional
occluder, then applies the camera. Visible: illumination, colour cast, vertical light gradient,
gamma, blur, noise. Infrared: every surface takes its emission level (skin bright from body
heat, clothing by material, carried items cool, background dark and flat), then gain,
vignetting (near-IR illuminator), blur, white noise and a fixed column pattern, and the single
channel is written three times as real IR crops are. Hue never reaches the IR image, so colour
cannot bridge the modality gap; shape, patterns (different ink emissivity), hair length and
carried items do. The figure itself is figure.py; the background is a cached strip per camera
(its wall, floor and clutter) of which each crop sees a random window, with per-image shading.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from reid_pipeline.data.synthetic.figure import Op, person_ops, unit
from reid_pipeline.data.synthetic.identity import Identity
from reid_pipeline.data.synthetic.raster import (
    Paint,
    RoundRect,
    draw,
    draw_all,
    gaussian_blur,
    smooth_noise,
)
from reid_pipeline.data.synthetic.scene import CameraStyle, Scene


@lru_cache(maxsize=64)
def _fixed_pattern(seed: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(width).astype(np.float32)


@lru_cache(maxsize=128)
def _strip(camera: CameraStyle, h: int, w: int) -> np.ndarray:
    """The camera's background strip (H, 4W, C), four crops wide, clutter drawn in; cached."""
    infrared = camera.sensor != "visible"
    sw = 4 * w
    rng = np.random.default_rng(camera.texture_seed)
    y = (np.arange(h, dtype=np.float32) + 0.5) / h
    t = np.clip((y - camera.horizon) / 0.04 + 0.5, 0.0, 1.0)[:, None, None]  # (H, 1, 1)
    if infrared:
        strip = np.full((h, sw, 1), camera.ir_background, dtype=np.float32) + 0.03 * t
        strip += 0.025 * smooth_noise(rng, h, sw, cells=(4, 12), channels=1)
    else:
        wall = np.asarray(camera.wall, dtype=np.float32)
        floor = np.asarray(camera.floor, dtype=np.float32)
        strip = wall * (1.0 - t) + floor * t  # (H, 1, 3)
        strip = strip * (1.0 + 0.12 * smooth_noise(rng, h, sw, cells=(5, 16), channels=1))
        strip += 0.03 * smooth_noise(rng, h, sw, cells=(9, 24), channels=3)
    strip = np.ascontiguousarray(strip, dtype=np.float32)
    for x0, y0, x1, y1, rgb, ir in camera.clutter:
        paint = Paint(rgb, unit(camera.ir_background + ir))
        draw(strip, RoundRect(x0 * w, y0 * h, x1 * w, y1 * h, 0.5), paint)
    strip.setflags(write=False)
    return strip


def _background(camera: CameraStyle, scene: Scene, h: int, w: int, rng) -> np.ndarray:
    """(H, W, C) background: a window of the camera strip with per-image shading."""
    c0 = min(max(int(scene.bg_offset * w), 0), 3 * w)
    shade = 1.0 + 0.08 * smooth_noise(rng, h, w, cells=(3, 2), channels=1)  # (H, W, 1)
    return camera_strip(camera, h, w)[:, c0 : c0 + w] * shade  # (H, W, C)


camera_strip = _strip


def render_image(
    ident: Identity,
    scene: Scene,
    camera: CameraStyle,
    size: tuple[int, int],
    *,
    face_mask: bool = False,
) -> np.ndarray:
    """The (H, W, 3) uint8 crop of ``ident`` in ``scene`` seen by ``camera``."""
    h, w = size
    infrared = camera.sensor != "visible"
    rng = np.random.default_rng(scene.noise_seed)
    canvas = _background(camera, scene, h, w, rng)  # (H, W, C)
    ops: list[Op] = []
    hp = scene.scale * h * ident.height
    cx, foot = scene.cx * w, scene.foot * h
    occ = scene.occluder
    occ_ops: list[Op] = []
    if occ is not None and occ.kind == "person" and occ.person is not None:
        occ_ops = person_ops(
            occ.person,
            view=occ.view,
            facing=1 if occ.dx < 0 else -1,
            cx=cx + occ.dx * w,
            foot=foot + (occ.scale - 1) * 0.3 * hp,
            hp=hp * occ.scale,
            stride=0.5,
            swing=0.5,
            sensor=camera.sensor,
        )
        if not occ.in_front:
            ops += occ_ops
            occ_ops = []
    elif occ is not None:
        occ_ops = [
            (
                RoundRect(occ.x0 * w, occ.y0 * h, occ.x1 * w, occ.y1 * h, 0.03 * h),
                Paint(occ.rgb, occ.ir),
            )
        ]
    if hp > 0:
        ops += person_ops(
            ident,
            view=scene.view,
            facing=scene.facing,
            cx=cx,
            foot=foot,
            hp=hp,
            stride=scene.stride,
            swing=scene.swing,
            sensor=camera.sensor,
            face_mask=face_mask,
        )
    ops += occ_ops
    draw_all(canvas, ops)  # (H, W, C)
    canvas = gaussian_blur(canvas, (camera.blur + scene.blur) * h / 128.0)
    if infrared:
        gain = np.float32(camera.ir_gain)
        if camera.vignette > 0:
            yy = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
            xx = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
            gain = gain * (1.0 - camera.vignette * (yy * yy + xx * xx))[..., None]  # (H, W, 1)
        canvas = canvas * gain
        canvas += camera.fpn * _fixed_pattern(camera.fpn_seed, w)[None, :, None]
    else:
        light = (
            camera.gain
            * scene.illumination
            * (1.0 + camera.light_slope * (0.5 - (np.arange(h, dtype=np.float32) + 0.5) / h))
        )  # (H,)
        gains = np.asarray(camera.cast, np.float32) * np.asarray(scene.cast, np.float32)
        canvas = canvas * (light[:, None, None] * gains).astype(np.float32)  # (H, W, 3)
        np.maximum(canvas, 0.0, out=canvas)
        np.power(canvas, np.float32(camera.gamma), out=canvas)  # camera tone curve
    canvas += _sensor_noise(rng, canvas.shape, camera.noise)
    canvas *= np.float32(255.0)
    canvas += np.float32(0.5)
    np.clip(canvas, 0.0, 255.0, out=canvas)
    out = canvas.astype(np.uint8)  # (H, W, C)
    if infrared:
        out = np.repeat(out, 3, axis=2)  # (H, W, 3) identical channels
    return out


def _sensor_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean uniform noise with standard deviation ``sigma``, from one random byte per value
    (several times cheaper than ``standard_normal``; the shape of the distribution does not show
    at this amplitude)."""
    n = int(np.prod(shape))
    noise = np.frombuffer(rng.bytes(n), dtype=np.int8).astype(np.float32)  # uniform -128..127
    noise *= np.float32(sigma * 12**0.5 / 256.0)  # std of a 256-level uniform = 256 / sqrt(12)
    return noise.reshape(shape)
