"""Transform specs, the built pipeline, and the deterministic part of every custom transform."""

from __future__ import annotations

import pickle

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from reid_pipeline.data.augment import AdaptiveGray, ChannelExchange, Cutout, PadCrop, RandomErasing
from reid_pipeline.data.augment.channel import GRAY, KEEP
from reid_pipeline.data.augment.geometric import shift_image
from reid_pipeline.data.transforms import (
    CAJ_ERASING_FILL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transforms,
    build_transforms_by_modality,
    list_transforms,
    test_transform,
)

MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
STD = np.array(IMAGENET_STD, dtype=np.float32)


def ramp(h: int = 8, w: int = 6) -> np.ndarray:
    """An HxWx3 uint8 image whose every pixel is distinct per channel."""
    base = np.arange(h * w, dtype=np.int32).reshape(h, w)
    return np.stack([base, base + 60, base * 2 + 5], axis=2).astype(np.uint8)


def normalised(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(((img / 255.0 - MEAN) / STD).astype(np.float32).transpose(2, 0, 1))


# --------------------------------------------------------------------------- builder


def test_test_transform_resizes_and_normalises() -> None:
    img = np.full((20, 10, 3), (200, 100, 50), dtype=np.uint8)
    out = test_transform(16, 8)(img)
    assert out.shape == (3, 16, 8)
    assert out.dtype == torch.float32
    assert out.is_contiguous()
    expected = (np.array([200, 100, 50]) / 255.0 - MEAN) / STD
    torch.testing.assert_close(out[:, 0, 0], torch.tensor(expected, dtype=torch.float32))
    same_size = test_transform(8, 6)(ramp())
    torch.testing.assert_close(same_size, normalised(ramp()), atol=1e-5, rtol=0)


def test_every_name_builds() -> None:
    spec = [{"name": name} for name in list_transforms()]
    for modality in (0, 1, None):
        t = build_transforms(spec, height=16, width=8, modality=modality, seed=0)
        assert t(ramp(20, 10)).shape == (3, 16, 8)


def test_modality_entries_are_filtered() -> None:
    spec = [
        {"name": "resize"},
        {"name": "channel_exchange", "modality": "visible"},
        {"name": "adaptive_gray", "modality": "infrared"},
        {"name": "horizontal_flip", "modality": "both"},
    ]
    by_modality = build_transforms_by_modality(spec, height=8, width=6)
    assert by_modality[0].names == ("resize", "channel_exchange", "horizontal_flip")
    assert by_modality[1].names == ("resize", "adaptive_gray", "horizontal_flip")
    assert build_transforms(spec, height=8, width=6).names == ("resize", "horizontal_flip")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ([{"name": "resize"}, {"name": "blur"}], r"transforms\[1\]: unknown transform 'blur'.*"),
        ([{"name": "resize", "size": 3}], r"transforms\[0\] \(resize\): unknown option.*'size'"),
        ([{"p": 0.5}], r"transforms\[0\]: expected a mapping with a 'name' key"),
        ([{"name": "horizontal_flip", "p": 2}], r"\(horizontal_flip\): p must be a probability"),
        ([{"name": "cutout", "modality": "rgb"}], r"\(cutout\): modality must be one of"),
        ([{"name": "pad_crop", "padding": -1}], r"\(pad_crop\): padding must be an integer >= 0"),
        ([{"name": "pad_crop", "border_mode": "wrap"}], r"border_mode must be one of"),
        ([{"name": "pad_crop", "fill": "blue"}], r"\(pad_crop\): fill must be"),
        ([{"name": "random_erasing", "scale": [0.5, 0.1]}], r"scale must be a pair"),
        ([{"name": "random_erasing", "scale": [0.0, 0.1]}], r"scale must be a pair"),
        ([{"name": "random_erasing", "ratio": [0.3]}], r"ratio must be a pair"),
        ([{"name": "random_erasing", "max_attempts": 0}], r"max_attempts must be an integer"),
        ([{"name": "random_erasing", "fill_normalized": [1, 2]}], r"fill_normalized must be"),
        ([{"name": "cutout", "size": 0}], r"\(cutout\): size must be an integer >= 1"),
        ([{"name": "cutout", "size": [4, 4, 4]}], r"\(cutout\): size must be an integer or"),
        ([{"name": "color_jitter", "hue": 0.7}], r"\(color_jitter\): hue must be"),
        ([{"name": "channel_exchange", "gray": "yes"}], r"gray must be true or false"),
        ([{"name": "adaptive_gray", "gray_p": 1.5}], r"gray_p must be a probability"),
        ([{"name": "resize", "interpolation": "bilinear"}], r"interpolation must be one of"),
    ],
)
def test_bad_specs_name_entry_and_option(spec: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_transforms(spec, height=8, width=6)


def test_unknown_name_lists_accepted_names() -> None:
    with pytest.raises(ValueError, match="accepted names") as info:
        build_transforms([{"name": "mixup"}], height=8, width=6)
    for name in ("resize", "pad_crop", "channel_exchange", "adaptive_gray"):
        assert name in str(info.value)


def test_bad_builder_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="height must be a positive integer"):
        build_transforms([], height=0, width=6)
    with pytest.raises(ValueError, match="expected a list"):
        build_transforms({"name": "resize"}, height=8, width=6)  # type: ignore[arg-type]
    t = test_transform(8, 6)
    with pytest.raises(ValueError, match="HxWx3 RGB"):
        t(np.zeros((8, 6), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        t(np.zeros((8, 6, 3), dtype=np.float32))
    no_resize = build_transforms([{"name": "horizontal_flip"}], height=8, width=6)
    with pytest.raises(ValueError, match="put a 'resize' entry first"):
        no_resize(np.zeros((10, 6, 3), dtype=np.uint8))


def test_seeded_pipelines_repeat_and_decisions_are_not_correlated() -> None:
    spec = [{"name": "horizontal_flip", "p": 0.5}, {"name": "random_grayscale", "p": 0.5}]
    a = build_transforms(spec, height=8, width=6, seed=3)
    b = build_transforms(spec, height=8, width=6, seed=3)
    img = ramp()
    outcomes = set()
    for _ in range(64):
        torch.testing.assert_close(a(img), b(img))
        flip, gray = a.compose.transforms[:2]
        outcomes.add((bool(flip.params), bool(gray.params)))  # params are empty when skipped
    # albumentations' Compose(seed=...) would give only (True, True) and (False, False)
    assert outcomes == {(True, True), (True, False), (False, True), (False, False)}
    a.set_random_seed(3)
    c = build_transforms(spec, height=8, width=6, seed=3)
    torch.testing.assert_close(a(img), c(img))


def test_built_pipeline_pickles_for_worker_processes() -> None:
    t = build_transforms(
        [{"name": "resize"}, {"name": "random_erasing", "p": 1.0}], height=8, width=6, seed=1
    )
    clone = pickle.loads(pickle.dumps(t))
    torch.testing.assert_close(clone(ramp()), t(ramp()))


def test_mean_fill_is_zero_after_normalisation() -> None:
    t = build_transforms(
        [{"name": "cutout", "size": 100, "p": 1.0, "fill": "mean"}], height=8, width=6, seed=0
    )
    out = t(ramp())  # a 100x100 square centred anywhere covers the 8x6 image
    assert out.abs().max().item() < 0.5 / 255 / min(IMAGENET_STD) + 1e-6


def test_fill_normalized_is_written_in_normalised_units() -> None:
    t = build_transforms(
        [{"name": "channel_random_erasing", "p": 1.0, "scale": [0.3, 0.3], "ratio": [1.0, 1.0]}],
        height=40,
        width=40,
        seed=0,
    )
    out = t(np.zeros((40, 40, 3), dtype=np.uint8))
    for c in range(3):
        values = out[c].unique()
        assert len(values) == 2  # background and the erased square
        assert values.max().item() == pytest.approx(
            CAJ_ERASING_FILL[c], abs=0.5 / 255 / IMAGENET_STD[c] + 1e-6
        )


# --------------------------------------------------------------------------- pad_crop


@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (3, -2), (-4, 4), (10, 0), (-1, -3)])
@pytest.mark.parametrize(("mode", "np_mode"), [("reflect", "reflect"), ("replicate", "edge")])
def test_shift_matches_numpy_pad_then_crop(dy: int, dx: int, mode: str, np_mode: str) -> None:
    img = ramp(12, 9)
    padded = np.pad(img, ((4, 4), (4, 4), (0, 0)), mode=np_mode)
    if abs(dy) <= 4 and abs(dx) <= 4:
        out = shift_image(img, dy, dx, fill=0, border_mode=mode, padding=(4, 4))
        np.testing.assert_array_equal(out, padded[4 - dy : 4 - dy + 12, 4 - dx : 4 - dx + 9])
    constant = np.pad(img, ((10, 10), (10, 10), (0, 0)), constant_values=7)
    out = shift_image(img, dy, dx, fill=7, border_mode="constant", padding=(10, 10))
    np.testing.assert_array_equal(out, constant[10 - dy : 10 - dy + 12, 10 - dx : 10 - dx + 9])


def test_pad_crop_offsets_are_uniform_over_all_positions() -> None:
    t = PadCrop(padding=(2, 1))
    t.set_random_seed(0)
    seen = {(p["dy"], p["dx"]) for p in (t.get_params() for _ in range(400))}
    assert seen == {(dy, dx) for dy in range(-2, 3) for dx in range(-1, 2)}


def test_pad_crop_moves_mask_and_keypoints_with_the_image() -> None:
    img = ramp(10, 8)
    mask = (np.arange(80).reshape(10, 8) % 7).astype(np.uint8)
    compose = A.Compose(
        [PadCrop(padding=3, fill=0, p=1.0)],
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
    )
    compose.set_random_state(np.random.default_rng(5), __import__("random").Random(5))
    out = compose(image=img, mask=mask, keypoints=np.array([[2.0, 4.0]]))
    params = compose.transforms[0].params
    dy, dx = params["dy"], params["dx"]
    np.testing.assert_array_equal(
        out["image"], shift_image(img, dy, dx, fill=0, border_mode="constant", padding=(3, 3))
    )
    np.testing.assert_array_equal(
        out["mask"], shift_image(mask, dy, dx, fill=0, border_mode="constant", padding=(3, 3))
    )
    np.testing.assert_allclose(out["keypoints"][0][:2], [2.0 + dx, 4.0 + dy])


# --------------------------------------------------------------------------- erasing


def test_random_erasing_rectangles_follow_zhong() -> None:
    t = RandomErasing(scale=(0.1, 0.3), ratio=(0.5, 2.0), p=1.0)
    t.set_random_seed(0)
    for _ in range(300):
        rect = t.sample_rect(64, 32)
        assert rect is not None
        y, x, h, w = rect
        assert 0 <= y <= 64 - h
        assert 0 <= x <= 32 - w
        assert 0 < h < 64
        assert 0 < w < 32
        # h*w within the area range up to rounding of h and w
        assert 0.1 * 2048 * 0.75 <= h * w <= 0.3 * 2048 * 1.3
        assert 0.5 * 0.6 <= h / w <= 2.0 * 1.6
    impossible = RandomErasing(scale=(1.0, 1.0), ratio=(1.0, 1.0), p=1.0)
    assert impossible.sample_rect(8, 8) is None  # 8x8 never fits strictly inside


def test_random_erasing_paints_exactly_the_rectangle() -> None:
    img = ramp(10, 8)
    t = RandomErasing(fill=(1.0, 2.0, 3.0), p=1.0)
    out = t.apply(img, rect=(2, 3, 4, 2))
    expected = img.copy()
    expected[2:6, 3:5] = (1, 2, 3)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(t.apply(img, rect=None), img)
    noise = np.full((4, 2, 3), 9, dtype=np.uint8)
    np.testing.assert_array_equal(
        RandomErasing(fill="random").apply(img, (2, 3, 4, 2), noise)[2:6, 3:5], noise
    )


def test_random_erasing_probability() -> None:
    img = ramp(20, 10)
    never = A.Compose([RandomErasing(p=0.0)])
    always = A.Compose([RandomErasing(p=1.0, fill=255)])
    always.set_random_state(np.random.default_rng(0), __import__("random").Random(0))
    for _ in range(20):
        np.testing.assert_array_equal(never(image=img)["image"], img)
        assert (always(image=img)["image"] != img).any()


def test_random_erasing_random_fill_is_noise() -> None:
    t = A.Compose([RandomErasing(p=1.0, fill="random", scale=(0.4, 0.4), ratio=(1.0, 1.0))])
    t.set_random_state(np.random.default_rng(0), __import__("random").Random(0))
    out = t(image=np.zeros((40, 40, 3), dtype=np.uint8))["image"]
    changed = out[(out != 0).any(axis=2)]
    assert len(changed) > 400
    assert len(np.unique(changed)) > 100


def test_cutout_square_is_clipped_at_borders() -> None:
    t = Cutout(size=6, p=1.0)
    t.set_random_seed(1)
    full = 0
    for _ in range(300):
        y, x, h, w = t.sample_rect(20, 10)
        assert 0 <= y < y + h <= 20
        assert 0 <= x < x + w <= 10
        assert h <= 6
        assert w <= 6
        full += (h, w) == (6, 6)
    assert 0 < full < 300
    img = ramp(10, 8)
    out = Cutout(size=(3, 2), fill=0).apply(img, rect=(0, 6, 3, 2))
    expected = img.copy()
    expected[0:3, 6:8] = 0
    np.testing.assert_array_equal(out, expected)


# --------------------------------------------------------------------------- channels


def test_channel_choices() -> None:
    img = ramp()
    for c in range(3):
        out = ChannelExchange().apply(img, choice=c)
        np.testing.assert_array_equal(out, np.repeat(img[:, :, c : c + 1], 3, axis=2))
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(
        AdaptiveGray().apply(img, choice=GRAY), np.repeat(gray[:, :, None], 3, axis=2)
    )
    np.testing.assert_array_equal(AdaptiveGray().apply(img, choice=KEEP), img)
    luma = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    assert np.abs(gray.astype(float) - luma).max() <= 1.0
    with pytest.raises(ValueError, match="HxWx3"):
        ChannelExchange().apply(img[:, :, :1], choice=0)


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        (ChannelExchange(gray=True), {0, 1, 2, GRAY}),
        (ChannelExchange(gray=False), {0, 1, 2}),
        (AdaptiveGray(gray_p=0.5), {0, 1, 2, GRAY, KEEP}),
        (AdaptiveGray(gray_p=0.0), {0, 1, 2, KEEP}),
        (AdaptiveGray(gray_p=1.0), {0, 1, 2, GRAY}),
    ],
)
def test_channel_choice_distribution(transform: A.ImageOnlyTransform, expected: set) -> None:
    transform.set_random_seed(0)
    draws = [transform.get_params()["choice"] for _ in range(800)]
    assert set(draws) == expected
    counts = np.array([draws.count(c) for c in sorted(expected)])
    assert counts.min() > 800 / len(expected) / 3  # no choice starved


def test_custom_transforms_report_their_init_args() -> None:
    assert RandomErasing().get_transform_init_args() == {
        "scale": (0.02, 0.4),
        "ratio": (0.3, 1 / 0.3),
        "fill": 0.0,
        "max_attempts": 100,
    }
    assert PadCrop(padding=4).get_transform_init_args()["padding"] == (4, 4)
    assert ChannelExchange(gray=False).get_transform_init_args() == {"gray": False}
    assert AdaptiveGray().get_transform_init_args() == {"gray_p": 0.5}
    assert Cutout(size=64).get_transform_init_args()["size"] == (64, 64)
