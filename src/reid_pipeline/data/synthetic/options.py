"""Options of the synthetic generator: per-layout presets and the validation of every option.

Presets: ``default`` is sized for the CPU demo (a ResNet-18 trains from scratch on Market-like /
SYSU-like defaults in minutes on 2 cores: ~1,500 training images, a few hundred queries, ~1-1.5k
gallery images) and ``tiny`` (a handful of ids, well under a second) for unit tests. Any option
given explicitly overrides the preset; every value is checked here, once, with a message naming
the option and what was expected.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

PRESETS = ("default", "tiny")


@dataclass(frozen=True)
class LayoutSpec:
    name: str
    folder: str  # the dataset's own folder name
    stream: int  # separates identities / cameras of different layouts under one seed
    size: tuple[int, int]  # typical crop (height, width)
    train_fraction: float  # share of ``num_ids`` used for training
    presets: dict[str, dict[str, Any]]
    has_distractors: bool = False
    has_junk: bool = False


LAYOUTS: dict[str, LayoutSpec] = {
    spec.name: spec
    for spec in (
        LayoutSpec(
            "market1501",
            "Market-1501-v15.09.15",
            1,
            (128, 64),
            0.5,
            {
                "default": dict(
                    num_train_ids=150,
                    num_test_ids=150,
                    images_per_camera=(1, 4),
                    num_distractors=120,
                    num_junk=60,
                ),
                "tiny": dict(
                    num_train_ids=4,
                    num_test_ids=4,
                    images_per_camera=(1, 2),
                    num_distractors=3,
                    num_junk=2,
                ),
            },
            has_distractors=True,
            has_junk=True,
        ),
        # Your-own-data layouts (docs/custom_data.md): the synthetic Market-1501 identities
        # (same stream, so the same persons and pictures for the same options), junk left out.
        LayoutSpec(
            "folders",
            "synthetic_folders",
            1,
            (128, 64),
            0.5,
            {
                "default": dict(
                    num_train_ids=150,
                    num_test_ids=150,
                    images_per_camera=(1, 4),
                    num_distractors=120,
                ),
                "tiny": dict(
                    num_train_ids=4, num_test_ids=4, images_per_camera=(1, 2), num_distractors=3
                ),
            },
            has_distractors=True,
        ),
        LayoutSpec(
            "manifest",
            "synthetic_manifest",
            1,
            (128, 64),
            0.5,
            {
                "default": dict(
                    num_train_ids=150,
                    num_test_ids=150,
                    images_per_camera=(1, 4),
                    num_distractors=120,
                ),
                "tiny": dict(
                    num_train_ids=4, num_test_ids=4, images_per_camera=(1, 2), num_distractors=3
                ),
            },
            has_distractors=True,
        ),
        LayoutSpec(
            "dukemtmc",
            "DukeMTMC-reID",
            2,
            (128, 64),
            0.5,
            {
                "default": dict(
                    num_train_ids=120,
                    num_test_ids=120,
                    images_per_camera=(1, 4),
                    num_distractors=40,
                ),
                "tiny": dict(
                    num_train_ids=4, num_test_ids=4, images_per_camera=(1, 2), num_distractors=2
                ),
            },
            has_distractors=True,
        ),
        LayoutSpec(
            "cuhk03",
            "cuhk03-np",
            3,
            (128, 64),
            0.52,
            {
                "default": dict(num_train_ids=120, num_test_ids=100, images_per_camera=(2, 5)),
                "tiny": dict(num_train_ids=4, num_test_ids=4, images_per_camera=(2, 3)),
            },
        ),
        LayoutSpec(
            "msmt17",
            "MSMT17_V1",
            4,
            (128, 64),
            0.5,
            {
                "default": dict(num_train_ids=100, num_test_ids=100, images_per_camera=(1, 3)),
                "tiny": dict(num_train_ids=4, num_test_ids=4, images_per_camera=(1, 2)),
            },
        ),
        LayoutSpec(
            "sysu_mm01",
            "SYSU-MM01",
            5,
            (128, 64),
            0.67,
            {
                "default": dict(num_train_ids=100, num_test_ids=50, images_per_camera=(2, 5)),
                "tiny": dict(num_train_ids=4, num_test_ids=3, images_per_camera=(1, 2)),
            },
        ),
        LayoutSpec(
            "regdb",
            "RegDB",
            6,
            (128, 64),
            0.5,
            {
                "default": dict(num_train_ids=50, num_test_ids=50, images_per_camera=(10, 10)),
                "tiny": dict(num_train_ids=2, num_test_ids=2, images_per_camera=(10, 10)),
            },
        ),
        LayoutSpec(
            "llcm",
            "LLCM",
            7,
            (128, 48),
            0.67,
            {
                "default": dict(num_train_ids=80, num_test_ids=40, images_per_camera=(1, 3)),
                "tiny": dict(num_train_ids=4, num_test_ids=3, images_per_camera=(1, 2)),
            },
        ),
    )
}

COMMON_DEFAULTS: dict[str, Any] = dict(
    occlusion_prob=0.12,
    blur=0.8,
    illumination=(0.7, 1.25),
    attribute_sharing=0.5,
    num_distractors=0,
    num_junk=0,
)


@dataclass(frozen=True)
class SyntheticOptions:
    layout: str
    seed: int
    num_train_ids: int
    num_test_ids: int
    images_per_camera: tuple[int, int]
    image_size: tuple[int, int]
    occlusion_prob: float
    blur: float
    illumination: tuple[float, float]
    attribute_sharing: float
    num_distractors: int
    num_junk: int
    version: str  # msmt17: v1 | v2
    jpeg_quality: int
    workers: int

    @property
    def spec(self) -> LayoutSpec:
        return LAYOUTS[self.layout]

    @property
    def folder(self) -> str:
        if self.layout == "msmt17":
            return "MSMT17_V2" if self.version == "v2" else "MSMT17_V1"
        return self.spec.folder


def _int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def _float(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not lo <= float(value) <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return float(value)


def _pair(name: str, value: Any, kind: str, lo: float, hi: float) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair ({kind}, {kind}), got {value!r}")
    if kind == "int":
        a, b = _int(name, value[0], int(lo), int(hi)), _int(name, value[1], int(lo), int(hi))
    else:
        a, b = _float(name, value[0], lo, hi), _float(name, value[1], lo, hi)
    return a, b


def resolve_options(
    layout: str,
    *,
    preset: str = "default",
    seed: int = 0,
    num_ids: int | None = None,
    num_train_ids: int | None = None,
    num_test_ids: int | None = None,
    images_per_camera: tuple[int, int] | None = None,
    image_size: tuple[int, int] | None = None,
    occlusion_prob: float | None = None,
    blur: float | None = None,
    illumination: tuple[float, float] | None = None,
    attribute_sharing: float | None = None,
    num_distractors: int | None = None,
    num_junk: int | None = None,
    version: str | None = None,
    jpeg_quality: int = 92,
    workers: int = 1,
) -> SyntheticOptions:
    """Merge the preset with the given options and validate everything."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {list(PRESETS)}")
    spec = LAYOUTS[layout]
    base = {**COMMON_DEFAULTS, **spec.presets[preset]}
    seed = _int("seed", seed, 0)
    n_train, n_test = base["num_train_ids"], base["num_test_ids"]
    if num_ids is not None:
        total = _int("num_ids", num_ids, 2)
        if layout == "regdb" and total % 2:
            raise ValueError(
                f"regdb splits its ids in half in every trial: num_ids must be even, got {total}"
            )
        if num_train_ids is None and num_test_ids is None:
            n_train = max(1, min(total - 1, round(total * spec.train_fraction)))
            n_test = total - n_train
        elif num_train_ids is not None and num_test_ids is not None:
            if num_train_ids + num_test_ids != total:
                raise ValueError(
                    f"num_ids={total} disagrees with num_train_ids={num_train_ids} + "
                    f"num_test_ids={num_test_ids}; give num_ids or the two counts"
                )
        else:
            given = num_train_ids if num_train_ids is not None else num_test_ids
            if not isinstance(given, numbers.Integral) or not 1 <= given < total:
                raise ValueError(
                    f"num_train_ids / num_test_ids must be in [1, num_ids), got {given!r}"
                )
            n_train = num_train_ids if num_train_ids is not None else total - given
            n_test = num_test_ids if num_test_ids is not None else total - given
    if num_train_ids is not None:
        n_train = num_train_ids
    if num_test_ids is not None:
        n_test = num_test_ids
    n_train = _int("num_train_ids", n_train, 1, 100_000)
    n_test = _int("num_test_ids", n_test, 1, 100_000)
    if layout == "regdb" and n_train != n_test:
        raise ValueError(
            f"regdb splits its ids in half in every trial: num_train_ids ({n_train}) must equal "
            f"num_test_ids ({n_test}); or give num_ids only"
        )
    ipc = _pair("images_per_camera", images_per_camera or base["images_per_camera"], "int", 1, 500)
    if ipc[0] > ipc[1]:
        raise ValueError(f"images_per_camera must be (min, max) with min <= max, got {ipc}")
    extra_ids = 0
    if layout == "dukemtmc" and num_distractors is not None:
        extra_ids = num_distractors if isinstance(num_distractors, int) else 0
    elif layout == "dukemtmc":
        extra_ids = base["num_distractors"]
    if n_train + n_test + extra_ids > 9999:
        raise ValueError(
            f"num_train_ids + num_test_ids{' + num_distractors' if extra_ids else ''} = "
            f"{n_train + n_test + extra_ids} exceeds 9999: the layouts name persons with 4 digits"
        )
    if layout == "regdb" and (n_train + n_test) * ipc[1] > 97_000:
        raise ValueError(
            "regdb numbers its images with 5 digits: (num_train_ids + num_test_ids) * "
            f"images_per_camera[1] must be <= 97000, got {(n_train + n_test) * ipc[1]}"
        )
    size = _pair("image_size", image_size or spec.size, "int", 16, 2048)
    if size[0] < 32 or size[1] < 16:
        raise ValueError(
            f"image_size is (height, width) with height >= 32 and width >= 16, got {size}"
        )
    illum = _pair("illumination", illumination or base["illumination"], "float", 0.05, 4.0)
    if illum[0] > illum[1]:
        raise ValueError(f"illumination must be (low, high) with low <= high, got {illum}")
    for name, value, allowed in (
        ("num_distractors", num_distractors, spec.has_distractors),
        ("num_junk", num_junk, spec.has_junk),
    ):
        if value is not None and value != 0 and not allowed:
            raise ValueError(f"{name} is not used by layout {layout!r} (it has no such files)")
    if version is not None and layout != "msmt17":
        raise ValueError(f"version applies to msmt17 only, not to layout {layout!r}")
    version = "v1" if version is None else version
    if version not in ("v1", "v2"):
        raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
    return SyntheticOptions(
        layout=layout,
        seed=seed,
        num_train_ids=n_train,
        num_test_ids=n_test,
        images_per_camera=ipc,
        image_size=size,
        occlusion_prob=_float(
            "occlusion_prob",
            base["occlusion_prob"] if occlusion_prob is None else occlusion_prob,
            0,
            1,
        ),
        blur=_float("blur", base["blur"] if blur is None else blur, 0.0, 10.0),
        illumination=illum,
        attribute_sharing=_float(
            "attribute_sharing",
            base["attribute_sharing"] if attribute_sharing is None else attribute_sharing,
            0.0,
            1.0,
        ),
        num_distractors=_int(
            "num_distractors",
            base["num_distractors"] if num_distractors is None else num_distractors,
            0,
        ),
        num_junk=_int("num_junk", base["num_junk"] if num_junk is None else num_junk, 0),
        version=version,
        jpeg_quality=_int("jpeg_quality", jpeg_quality, 1, 100),
        workers=_int("workers", workers, 1, 256),
    )
