"""Image transforms declared as data and built once (albumentations 2.x).

A training spec is a list of entries ``{name: ..., **options}`` (parameters YAML), e.g. BoT's::

    - {name: resize}
    - {name: horizontal_flip, p: 0.5}
    - {name: pad_crop, padding: 10}
    - {name: random_erasing, p: 0.5}

and, for visible-infrared training, entries restricted to one modality::

    - {name: channel_exchange, modality: visible, p: 0.5}
    - {name: adaptive_gray, modality: infrared}

``build_transforms(spec, height=, width=, modality=)`` keeps the entries of that modality (and
those with ``modality: both``, the default), builds the albumentations pipeline once and returns an
``ImageTransform``: an HWC uint8 RGB numpy image -> a normalised CHW float32 tensor. Every entry
runs on the uint8 image; normalisation is the last step. Fills accept ``mean`` (the normalisation
mean, i.e. 0 after normalising).

Names and options (defaults in brackets):

- ``resize``: height [builder's], width [builder's], interpolation [linear] (nearest, linear,
  cubic, area, lanczos).
- ``horizontal_flip``: p [0.5].
- ``pad_crop``: padding [10] (int or [pad_y, pad_x]), fill [0] (number, per-channel list, mean),
  border_mode [constant] (constant, reflect, replicate), p [1.0].
- ``random_erasing`` (Zhong et al.): p [0.5], scale [[0.02, 0.4]] (area fraction), ratio
  [[0.3, 3.33]] (aspect h/w), fill [mean] (number, list, mean, random), fill_normalized [null]
  (values in normalised units, e.g. BoT's [0.4914, 0.4822, 0.4465]; overrides fill),
  max_attempts [100].
- ``channel_random_erasing`` (CAJ's ``ChannelRandomErasing``): random erasing whose fill is
  fill_normalized [[0.4914, 0.4822, 0.4465]] written after normalisation as CAJ does; same
  p / scale / ratio / max_attempts.
- ``cutout`` (DeVries & Taylor; PMM 64x64): size [64] (int or [h, w]), fill [mean], p [0.5].
- ``color_jitter`` (torchvision semantics): brightness, contrast, saturation [0], hue [0] (factor
  ranges [max(0, 1 - v), 1 + v], hue [-v, v]), p [1.0].
- ``random_grayscale``: p [0.1] (3-channel luma).
- ``channel_exchange`` (CAJ, visible): gray [true], p [0.5].
- ``adaptive_gray`` (CAJ ``ChannelAdapGray``, infrared): gray_p [0.5], p [1.0].

Every entry may also carry ``modality: visible | infrared | both``.

Randomness: ``ImageTransform.set_random_seed`` gives the whole pipeline ONE numpy and one Python
generator. (albumentations' ``Compose(seed=...)`` seeds every transform with the same seed, so
their decisions come out perfectly correlated - e.g. flip applied exactly when erasing is.)
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# First: it turns off albumentations' network version check before albumentations is imported.
from reid_pipeline.data.augment import (  # isort: split
    AdaptiveGray,
    ChannelExchange,
    Cutout,
    PadCrop,
    RandomErasing,
)

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.core.transforms_interface import BasicTransform
from torch import Tensor

from reid_pipeline.data.augment._checks import check_probability

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Fill of CAJ's ChannelRandomErasing / BoT's RandomErasing, in normalised units.
CAJ_ERASING_FILL: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)

MODALITY_NAMES = {"visible": 0, "infrared": 1, "both": None}
INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


@dataclass(frozen=True)
class _Context:
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def pixel_fill(self, fill: Any) -> Any:
        """``mean`` -> the normalisation mean in pixels; anything else unchanged."""
        if isinstance(fill, str) and fill == "mean":
            return tuple(255.0 * m for m in self.mean)
        return fill

    def from_normalized(self, owner: str, values: Any) -> tuple[float, ...]:
        if (
            not isinstance(values, Sequence)
            or isinstance(values, str)
            or len(values) != len(self.mean)
            or not all(isinstance(v, int | float) for v in values)
        ):
            raise ValueError(
                f"{owner}: fill_normalized must be a list of {len(self.mean)} numbers "
                f"(one per channel, in normalised units), got {values!r}"
            )
        return tuple(
            float(np.clip(255.0 * (m + v * s), 0.0, 255.0))
            for v, m, s in zip(values, self.mean, self.std, strict=True)
        )


# --- one builder per name: (context, **options) -> albumentations transform -------------------


def _resize(
    ctx: _Context,
    *,
    height: int | None = None,
    width: int | None = None,
    interpolation: str = "linear",
) -> BasicTransform:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}"
        )
    return A.Resize(
        height=ctx.height if height is None else height,
        width=ctx.width if width is None else width,
        interpolation=INTERPOLATIONS[interpolation],
    )


def _horizontal_flip(ctx: _Context, *, p: float = 0.5) -> BasicTransform:
    return A.HorizontalFlip(p=check_probability("horizontal_flip", "p", p))


def _pad_crop(
    ctx: _Context,
    *,
    padding: int | Sequence[int] = 10,
    fill: Any = 0,
    border_mode: str = "constant",
    p: float = 1.0,
) -> BasicTransform:
    padding = tuple(padding) if isinstance(padding, list) else padding
    return PadCrop(padding=padding, fill=ctx.pixel_fill(fill), border_mode=border_mode, p=p)


def _random_erasing(
    ctx: _Context,
    *,
    p: float = 0.5,
    scale: Sequence[float] = (0.02, 0.4),
    ratio: Sequence[float] = (0.3, 1 / 0.3),
    fill: Any = "mean",
    fill_normalized: Sequence[float] | None = None,
    max_attempts: int = 100,
) -> BasicTransform:
    owner = "random_erasing"
    value = (
        ctx.pixel_fill(fill)
        if fill_normalized is None
        else ctx.from_normalized(owner, fill_normalized)
    )
    return RandomErasing(
        scale=tuple(scale) if isinstance(scale, list) else scale,
        ratio=tuple(ratio) if isinstance(ratio, list) else ratio,
        fill=value,
        max_attempts=max_attempts,
        p=p,
    )


def _channel_random_erasing(
    ctx: _Context,
    *,
    p: float = 0.5,
    scale: Sequence[float] = (0.02, 0.4),
    ratio: Sequence[float] = (0.3, 1 / 0.3),
    fill_normalized: Sequence[float] = CAJ_ERASING_FILL,
    max_attempts: int = 100,
) -> BasicTransform:
    return _random_erasing(
        ctx,
        p=p,
        scale=scale,
        ratio=ratio,
        fill_normalized=fill_normalized,
        max_attempts=max_attempts,
    )


def _cutout(
    ctx: _Context, *, size: int | Sequence[int] = 64, fill: Any = "mean", p: float = 0.5
) -> BasicTransform:
    size = tuple(size) if isinstance(size, list) else size
    return Cutout(size=size, fill=ctx.pixel_fill(fill), p=p)


def _color_jitter(
    ctx: _Context,
    *,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    hue: float = 0.0,
    p: float = 1.0,
) -> BasicTransform:
    for key, value, high in (
        ("brightness", brightness, np.inf),
        ("contrast", contrast, np.inf),
        ("saturation", saturation, np.inf),
        ("hue", hue, 0.5),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
            raise ValueError(f"{key} must be a number in [0, {high}], got {value!r}")
    return A.ColorJitter(
        brightness=float(brightness),
        contrast=float(contrast),
        saturation=float(saturation),
        hue=float(hue),
        p=check_probability("color_jitter", "p", p),
    )


def _random_grayscale(ctx: _Context, *, p: float = 0.1) -> BasicTransform:
    return A.ToGray(
        num_output_channels=3,
        method="weighted_average",
        p=check_probability("random_grayscale", "p", p),
    )


def _channel_exchange(ctx: _Context, *, gray: bool = True, p: float = 0.5) -> BasicTransform:
    return ChannelExchange(gray=gray, p=p)


def _adaptive_gray(ctx: _Context, *, gray_p: float = 0.5, p: float = 1.0) -> BasicTransform:
    return AdaptiveGray(gray_p=gray_p, p=p)


BUILDERS: dict[str, Callable[..., BasicTransform]] = {
    "resize": _resize,
    "horizontal_flip": _horizontal_flip,
    "pad_crop": _pad_crop,
    "random_erasing": _random_erasing,
    "channel_random_erasing": _channel_random_erasing,
    "cutout": _cutout,
    "color_jitter": _color_jitter,
    "random_grayscale": _random_grayscale,
    "channel_exchange": _channel_exchange,
    "adaptive_gray": _adaptive_gray,
}


def list_transforms() -> list[str]:
    """Names accepted in a transform spec."""
    return sorted(BUILDERS)


class ImageTransform:
    """A built pipeline: HWC uint8 RGB ``np.ndarray`` -> normalised ``FloatTensor[3, H, W]``."""

    def __init__(
        self,
        transforms: Sequence[BasicTransform],
        *,
        height: int,
        width: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        names: Sequence[str] = (),
        seed: int | None = None,
    ) -> None:
        self.height, self.width = int(height), int(width)
        self.names = tuple(names)
        self.compose = A.Compose(
            [*transforms, A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0)],
            p=1.0,
        )
        self.set_random_seed(seed)

    def set_random_seed(self, seed: int | None) -> None:
        """Reseed: one numpy and one Python generator shared by every transform of the pipeline."""
        self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))

    def __call__(self, image: np.ndarray) -> Tensor:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", type(image).__name__)
            raise ValueError(f"ImageTransform expects an HxWx3 RGB numpy image, got {shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"ImageTransform expects a uint8 image, got dtype {image.dtype}")
        out = self.compose(image=image)["image"]  # (H, W, 3) float32
        if out.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"transforms {list(self.names)} produced a {out.shape[0]}x{out.shape[1]} image, "
                f"expected {self.height}x{self.width}: put a 'resize' entry first"
            )
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))  # (3, H, W)

    def __repr__(self) -> str:
        return f"ImageTransform({list(self.names)}, {self.height}x{self.width})"


def _entry_modality(index: int, name: str, value: Any) -> int | None:
    if isinstance(value, str) and value in MODALITY_NAMES:
        return MODALITY_NAMES[value]
    if value in (0, 1) and not isinstance(value, bool):
        return int(value)
    raise ValueError(
        f"transforms[{index}] ({name}): modality must be one of visible, infrared, both "
        f"(or 0, 1), got {value!r}"
    )


def build_transforms(
    spec: Sequence[Mapping[str, Any]],
    *,
    height: int,
    width: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    modality: int | None = None,
    seed: int | None = None,
) -> ImageTransform:
    """Build the pipeline of ``spec`` for ``modality`` (0 visible, 1 infrared, None: entries
    marked ``both`` only), normalising with ``mean`` / ``std`` (RGB, in [0, 1] units) to
    ``height x width``. ``seed`` seeds the pipeline's generator (None: fresh entropy; the
    ``ManifestDataset`` reseeds it per epoch and worker anyway). Bad names or options raise one
    ``ValueError`` naming the entry index, the name and the option."""
    for key, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"transforms: {key} must be a positive integer, got {value!r}")
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError(f"transforms: mean and std need 3 values, std > 0; got {mean}, {std}")
    if modality not in (None, 0, 1):
        raise ValueError(f"transforms: modality must be 0, 1 or None, got {modality!r}")
    if isinstance(spec, str | Mapping) or not isinstance(spec, Sequence):
        raise ValueError(f"transforms: expected a list of {{name: ...}} entries, got {spec!r}")
    ctx = _Context(int(height), int(width), tuple(map(float, mean)), tuple(map(float, std)))
    built: list[BasicTransform] = []
    names: list[str] = []
    for i, entry in enumerate(spec):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ValueError(
                f"transforms[{i}]: expected a mapping with a 'name' key, got {entry!r}"
            )
        options = dict(entry)
        name = options.pop("name")
        if name not in BUILDERS:
            raise ValueError(
                f"transforms[{i}]: unknown transform {name!r}; accepted names: {list_transforms()}"
            )
        entry_modality = _entry_modality(i, name, options.pop("modality", "both"))
        builder = BUILDERS[name]
        accepted = [k for k in inspect.signature(builder).parameters if k != "ctx"]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ValueError(
                f"transforms[{i}] ({name}): unknown option(s) {unknown}; accepted options: "
                f"{[*accepted, 'modality']}"
            )
        try:
            transform = builder(ctx, **options)
        except (ValueError, TypeError) as exc:
            message = str(exc).removeprefix(f"{name}: ")
            raise ValueError(f"transforms[{i}] ({name}): {message}") from None
        if entry_modality is None or entry_modality == modality:
            built.append(transform)
            names.append(name)
    return ImageTransform(
        built, height=height, width=width, mean=mean, std=std, names=names, seed=seed
    )


def build_transforms_by_modality(
    spec: Sequence[Mapping[str, Any]],
    *,
    height: int,
    width: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    seed: int | None = None,
) -> dict[int, ImageTransform]:
    """``{0: visible pipeline, 1: infrared pipeline}`` from one spec (for ``ManifestDataset``)."""
    return {
        m: build_transforms(
            spec, height=height, width=width, mean=mean, std=std, modality=m, seed=seed
        )
        for m in (0, 1)
    }


def eval_transform(
    height: int,
    width: int,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "linear",
) -> ImageTransform:
    """The evaluation transform: resize to ``height x width`` and normalise."""
    return build_transforms(
        [{"name": "resize", "interpolation": interpolation}],
        height=height,
        width=width,
        mean=mean,
        std=std,
    )


#: The name the rest of the project uses; ``__test__`` keeps pytest from collecting it when a
#: test module imports it.
test_transform = eval_transform
eval_transform.__test__ = False  # type: ignore[attr-defined]
