"""Occlusion augmentations: Random Erasing (Zhong et al.) and Cutout (DeVries & Taylor).

- ``RandomErasing``: Z. Zhong, L. Zheng, G. Kang, S. Li, Y. Yang, "Random Erasing Data
  Augmentation", AAAI 2020 (arXiv:1708.04896). Taken from the paper and its reference code: with
  probability ``p``, up to ``max_attempts`` tries draw an area fraction uniformly in
  ``scale = (s_l, s_h)`` and an aspect ratio uniformly in ``ratio = (r_1, r_2)``, take
  ``h = round(sqrt(S * r))``, ``w = round(sqrt(S / r))`` and accept the rectangle when
  ``h < H`` and ``w < W``; its top-left corner is uniform over the valid positions; the first
  accepted rectangle is erased. Defaults are the paper's ReID setting (``s_l=0.02, s_h=0.4,
  r_1=0.3, r_2=1/0.3``) used by BoT and AGW. The erased pixels get a constant value (one per
  channel) or, with ``fill="random"``, independent uniform random values (the paper's "RE-R").
  Ours: the transform runs on the uint8 image *before* normalisation, so a fill is given in pixel
  units; ``build_transforms`` turns ``fill: mean`` into the normalisation mean (0 after
  normalising) and ``fill_normalized`` values (what BoT / CAJ write after ``Normalize``) back into
  pixels, exact up to uint8 rounding.
- ``Cutout``: T. DeVries, G. W. Taylor, "Improved Regularization of Convolutional Neural Networks
  with Cutout", arXiv:1708.04552 (the fixed-size square PMM uses, 64x64 p 0.5). Taken from the
  paper: the centre is uniform over the whole image, the square is clipped at the borders (so it
  may be partly outside). The reference code fills with 0 after normalisation, i.e. the mean
  pixel; ``build_transforms`` uses ``fill: mean`` by default for that reason.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from albumentations.core.transforms_interface import ImageOnlyTransform

from reid_pipeline.data.augment._checks import (
    check_fill,
    check_positive_int,
    check_probability,
    check_range,
    fill_value,
)

Rect = tuple[int, int, int, int]  # (y, x, h, w)


def _paint(
    img: np.ndarray, rect: Rect | None, fill: Any, noise: np.ndarray | None, owner: str
) -> np.ndarray:
    if rect is None:
        return img
    y, x, h, w = rect
    out = img.copy()
    out[y : y + h, x : x + w] = noise if noise is not None else fill_value(fill, img, owner)
    return out


def _random_noise(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.random(size=shape, dtype=np.float32).astype(dtype)


class RandomErasing(ImageOnlyTransform):
    """Erase one random rectangle (Zhong et al.); see the module docstring."""

    def __init__(
        self,
        *,
        scale: tuple[float, float] = (0.02, 0.4),
        ratio: tuple[float, float] = (0.3, 1 / 0.3),
        fill: float | tuple[float, ...] | str = 0.0,
        max_attempts: int = 100,
        p: float = 0.5,
    ) -> None:
        owner = "random_erasing"
        p = check_probability(owner, "p", p)
        super().__init__(p=p)
        self.scale = check_range(owner, "scale", scale, low=0.0, high=1.0, low_open=True)
        self.ratio = check_range(owner, "ratio", ratio, low=0.0, high=math.inf, low_open=True)
        self.fill = check_fill(owner, "fill", fill, allow_random=True)
        self.max_attempts = check_positive_int(owner, "max_attempts", max_attempts)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale", "ratio", "fill", "max_attempts")

    def sample_rect(self, height: int, width: int) -> Rect | None:
        """The rectangle erased on an ``height x width`` image, or None when no try fits."""
        area = height * width
        rnd = self.py_random
        for _ in range(self.max_attempts):
            target = rnd.uniform(*self.scale) * area
            aspect = rnd.uniform(*self.ratio)
            h = round(math.sqrt(target * aspect))
            w = round(math.sqrt(target / aspect))
            if 0 < h < height and 0 < w < width:
                return rnd.randint(0, height - h), rnd.randint(0, width - w), h, w
        return None

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        shape = params["shape"]
        rect = self.sample_rect(shape[0], shape[1])
        noise = None
        if rect is not None and self.fill == "random":
            image = data["image"] if "image" in data else data["images"][0]
            noise = _random_noise(
                self.random_generator, (rect[2], rect[3], *shape[2:]), image.dtype
            )
        return {"rect": rect, "noise": noise}

    def apply(
        self, img: np.ndarray, rect: Rect | None = None, noise: np.ndarray | None = None, **_: Any
    ) -> np.ndarray:
        return _paint(img, rect, self.fill, noise, "random_erasing")


class Cutout(ImageOnlyTransform):
    """Mask a fixed-size square centred uniformly in the image (DeVries & Taylor)."""

    def __init__(
        self,
        *,
        size: int | tuple[int, int] = 64,
        fill: float | tuple[float, ...] = 0.0,
        p: float = 0.5,
    ) -> None:
        owner = "cutout"
        p = check_probability(owner, "p", p)
        super().__init__(p=p)
        if isinstance(size, int | np.integer) and not isinstance(size, bool):
            size = (int(size), int(size))
        if not (isinstance(size, tuple | list) and len(size) == 2):
            raise ValueError(f"cutout: size must be an integer or (height, width), got {size!r}")
        self.size = (
            check_positive_int(owner, "size", size[0]),
            check_positive_int(owner, "size", size[1]),
        )
        self.fill = check_fill(owner, "fill", fill)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size", "fill")

    def sample_rect(self, height: int, width: int) -> Rect:
        cy = self.py_random.randint(0, height - 1)
        cx = self.py_random.randint(0, width - 1)
        sh, sw = self.size
        y1, x1 = max(cy - sh // 2, 0), max(cx - sw // 2, 0)
        y2, x2 = min(cy - sh // 2 + sh, height), min(cx - sw // 2 + sw, width)
        return y1, x1, y2 - y1, x2 - x1

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        shape = params["shape"]
        return {"rect": self.sample_rect(shape[0], shape[1])}

    def apply(self, img: np.ndarray, rect: Rect | None = None, **_: Any) -> np.ndarray:
        return _paint(img, rect, self.fill, None, "cutout")
