"""The synthetic generator's drawing layer: rasteriser, identities, viewpoints, infrared."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from reid_pipeline.data.synthetic.identity import UPPER_COLOURS, sample_identity
from reid_pipeline.data.synthetic.raster import (
    Capsule,
    Ellipse,
    Paint,
    Polygon,
    RoundRect,
    draw,
    gaussian_blur,
)
from reid_pipeline.data.synthetic.render import render_image
from reid_pipeline.data.synthetic.scene import Scene, make_camera, sample_scene, track_view

WHITE = Paint((1.0, 1.0, 1.0), 1.0)


def _area(shape, size=(128, 128)) -> float:
    canvas = np.zeros((*size, 1), dtype=np.float32)
    draw(canvas, shape, WHITE)
    return float(canvas.sum())


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (Ellipse(60.3, 50.7, 20.0, 12.5), math.pi * 20.0 * 12.5),
        (RoundRect(10.0, 20.0, 70.0, 50.0, 0.0), 60.0 * 30.0),
        (RoundRect(10.0, 20.0, 70.0, 50.0, 8.0), 60.0 * 30.0 - (4 - math.pi) * 64.0),
        (Polygon(((20.0, 10.0), (100.0, 30.0), (40.0, 90.0))), 0.5 * abs(80 * 80 - 20 * 20)),
        (Capsule(30.0, 20.0, 80.0, 100.0, 6.0, 6.0), math.pi * 36 + 12 * math.hypot(50, 80)),
    ],
)
def test_rasterised_area_matches_geometry(shape, expected):
    assert _area(shape) == pytest.approx(expected, rel=0.02)


def test_polygon_winding_does_not_matter():
    pts = ((20.0, 10.0), (100.0, 30.0), (40.0, 90.0))
    assert _area(Polygon(pts)) == pytest.approx(_area(Polygon(pts[::-1])), abs=1e-3)


def test_shapes_outside_the_canvas_are_clipped():
    assert _area(Ellipse(-50.0, -50.0, 10.0, 10.0)) == 0.0
    half = _area(RoundRect(-20.0, 0.0, 20.0, 10.0))  # half of it inside
    assert half == pytest.approx(20.0 * 10.0, rel=0.02)


def test_stripes_alternate_with_the_period():
    canvas = np.zeros((64, 64, 3), dtype=np.float32)
    paint = Paint((1.0, 0.0, 0.0), 0.2, "hstripes", (0.0, 0.0, 1.0), 0.8, 8.0, (0.0, 0.0))
    draw(canvas, RoundRect(0.0, 0.0, 64.0, 64.0), paint)
    column = canvas[:, 32]
    assert np.allclose(column[0:4], [0.0, 0.0, 1.0])  # first half-period: second colour
    assert np.allclose(column[4:8], [1.0, 0.0, 0.0])
    assert np.allclose(column[8:12], [0.0, 0.0, 1.0])
    ir = np.zeros((64, 64, 1), dtype=np.float32)
    draw(ir, RoundRect(0.0, 0.0, 64.0, 64.0), paint)
    assert np.allclose(np.unique(np.round(ir[:, 32, 0], 3)), [0.2, 0.8])  # pattern survives in IR


def test_gaussian_blur_keeps_constants_and_mass():
    flat = np.full((40, 30, 3), 0.25, dtype=np.float32)
    assert np.allclose(gaussian_blur(flat, 1.5), 0.25, atol=1e-6)
    spot = np.zeros((41, 41, 1), dtype=np.float32)
    spot[20, 20] = 1.0
    out = gaussian_blur(spot, 1.5)
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    assert out[20, 20, 0] < 0.2
    assert out[20, 21, 0] == pytest.approx(out[21, 20, 0], abs=1e-6)  # isotropic
    assert gaussian_blur(spot, 0.1) is spot  # below 0.3 px: untouched


def test_identity_is_a_pure_function_of_seed_and_key():
    assert sample_identity(3, 17) == sample_identity(3, 17)
    assert sample_identity(3, 17) != sample_identity(3, 18)
    assert sample_identity(3, 17) != sample_identity(4, 17)


def test_attribute_sharing_concentrates_coarse_colours():
    black = UPPER_COLOURS[0][1]

    def black_share(sharing: float) -> float:
        tops = [sample_identity(0, k, sharing=sharing).upper.colour for k in range(300)]
        return float(np.mean([np.abs(np.subtract(t, black)).max() < 0.05 for t in tops]))

    uniform, strong = black_share(0.0), black_share(1.0)
    assert uniform < 0.15  # 1 / 14 expected
    assert strong > 0.45
    assert strong > 3 * uniform


def _scene(view: str = "front", **over) -> Scene:
    base = dict(
        view=view,
        facing=1,
        scale=0.85,
        cx=0.5,
        foot=0.96,
        stride=0.3,
        swing=0.3,
        bg_offset=1.0,
        illumination=1.0,
        cast=(1.0, 1.0, 1.0),
        blur=0.0,
        noise_seed=5,
    )
    base.update(over)
    return Scene(**base)


def _identity(**over):
    ident = sample_identity(0, 1)
    return dataclasses.replace(ident, **over)


def test_infrared_images_have_three_equal_channels_and_visible_do_not():
    ident = _identity()
    ir = render_image(ident, _scene(), make_camera(0, 1, 3, sensor="nir"), (128, 64))
    th = render_image(ident, _scene(), make_camera(0, 1, 4, sensor="thermal"), (128, 64))
    vis = render_image(ident, _scene(), make_camera(0, 1, 1), (128, 64))
    for image in (ir, th, vis):
        assert image.shape == (128, 64, 3)
        assert image.dtype == np.uint8
    assert np.array_equal(ir[..., 0], ir[..., 1])
    assert np.array_equal(ir[..., 1], ir[..., 2])
    assert np.array_equal(th[..., 0], th[..., 2])
    assert not np.array_equal(vis[..., 0], vis[..., 2])


def test_clothing_colour_does_not_reach_the_infrared_image():
    ident = _identity()
    recoloured = dataclasses.replace(
        ident,
        upper=dataclasses.replace(ident.upper, colour=(0.9, 0.1, 0.1), colour2=(0.1, 0.9, 0.1)),
        lower=dataclasses.replace(ident.lower, colour=(0.95, 0.95, 0.2)),
        shoes=(0.1, 0.2, 0.9),
    )
    ir_cam, vis_cam = make_camera(0, 1, 3, sensor="thermal"), make_camera(0, 1, 1)
    assert np.array_equal(
        render_image(ident, _scene(), ir_cam, (128, 64)),
        render_image(recoloured, _scene(), ir_cam, (128, 64)),
    )
    assert not np.array_equal(
        render_image(ident, _scene(), vis_cam, (128, 64)),
        render_image(recoloured, _scene(), vis_cam, (128, 64)),
    )


def test_pattern_shape_and_carried_items_survive_in_infrared():
    base = _identity(backpack=None, shoulder_bag=None, handheld=None, logo=None)
    plain = dataclasses.replace(base, upper=dataclasses.replace(base.upper, pattern="plain"))
    striped = dataclasses.replace(base, upper=dataclasses.replace(base.upper, pattern="hstripes"))
    bag = dataclasses.replace(plain, backpack=(0.1, 0.1, 0.1))
    cam = make_camera(0, 1, 3, sensor="thermal")
    back = _scene("back")
    img_plain = render_image(plain, back, cam, (128, 64)).astype(int)
    assert np.abs(render_image(striped, back, cam, (128, 64)).astype(int) - img_plain).sum() > 2000
    assert np.abs(render_image(bag, back, cam, (128, 64)).astype(int) - img_plain).sum() > 2000


def test_viewpoint_decides_what_is_visible():
    base = _identity(backpack=None, shoulder_bag=None, handheld=None, logo=None)
    base = dataclasses.replace(base, upper=dataclasses.replace(base.upper, pattern="plain"))
    with_logo = dataclasses.replace(base, logo=("circle", (0.95, 0.95, 0.1), 0.04, 0.0))
    cam = make_camera(0, 1, 1)
    front, back = _scene("front"), _scene("back")

    def differs(a, b, scene) -> bool:
        return not np.array_equal(
            render_image(a, scene, cam, (128, 64)), render_image(b, scene, cam, (128, 64))
        )

    assert differs(base, with_logo, front)  # a chest logo shows from the front ...
    assert not differs(base, with_logo, back)  # ... not from the back
    bag = dataclasses.replace(base, backpack=(0.7, 0.1, 0.1))
    red_back = render_image(bag, back, cam, (128, 64)).astype(int)
    red_front = render_image(bag, front, cam, (128, 64)).astype(int)
    no_bag_back = render_image(base, back, cam, (128, 64)).astype(int)
    no_bag_front = render_image(base, front, cam, (128, 64)).astype(int)
    # the backpack body covers far more pixels seen from the back than its straps from the front
    assert np.abs(red_back - no_bag_back).sum() > 2 * np.abs(red_front - no_bag_front).sum()


def test_scene_sampling_is_reproducible_and_crop_kinds_differ():
    cam = make_camera(0, 1, 2)
    view = track_view(0, 5, cam)

    def scene(crop: str, seed: int = 1) -> Scene:
        return sample_scene(np.random.default_rng(seed), cam, view=view, crop=crop)

    assert scene("person") == scene("person")
    assert scene("person") != scene("person", seed=2)
    partial = [
        sample_scene(np.random.default_rng(s), cam, view=view, crop="partial") for s in range(20)
    ]
    assert all(p.scale > cam.scale[0] * 1.1 for p in partial)  # bad boxes cut the body
    junk = [sample_scene(np.random.default_rng(s), cam, view=view, crop="junk") for s in range(40)]
    assert any(j.scale == 0.0 for j in junk)  # background-only crops exist


def test_a_camera_place_is_shared_between_sensors():
    vis = make_camera(0, 7, 4, place=4)
    nir = make_camera(0, 7, 104, sensor="nir", place=4)
    assert vis.clutter == nir.clutter
    assert vis.horizon == nir.horizon
    assert vis.sensor != nir.sensor
    with pytest.raises(ValueError, match="sensor"):
        make_camera(0, 1, 1, sensor="xray")


def test_near_infrared_follows_luminance_never_hue():
    """Near-IR reflectance depends on a fabric's luminance and dye, not on its hue: two colours
    of equal luma give the same NIR image, a much brighter fabric a different one."""
    ident = _identity(backpack=None, shoulder_bag=None, handheld=None, logo=None)
    top = dataclasses.replace(ident.upper, pattern="plain", nir_dye=0.0)

    def with_top(colour):
        return dataclasses.replace(ident, upper=dataclasses.replace(top, colour=colour))

    luma = (0.299, 0.587, 0.114)
    red = (0.6, 0.2, 0.2)
    level = float(np.dot(luma, red))
    green = (0.2, (level - 0.299 * 0.2 - 0.114 * 0.2) / 0.587, 0.2)  # same luma, other hue
    assert float(np.dot(luma, green)) == pytest.approx(level, abs=1e-12)
    cam = make_camera(0, 1, 3, sensor="nir")

    def nir(colour):
        return render_image(with_top(colour), _scene(), cam, (128, 64))

    assert np.array_equal(nir(red), nir(green))
    assert not np.array_equal(nir(red), nir((0.95, 0.95, 0.95)))
