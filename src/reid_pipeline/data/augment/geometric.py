"""Pad + random crop back to the input size, in one pass.

The ReID recipes (BoT, AGW, CAJ) pad the resized image by 10 pixels and take a random crop of the
original size (torchvision ``Pad(10)`` then ``RandomCrop(size)``): a random translation of up to
``padding`` pixels with the uncovered border filled. ``PadCrop`` does exactly that - the crop
offset is uniform over the ``(2 * pad_y + 1) x (2 * pad_x + 1)`` positions, as ``RandomCrop`` on
the padded image - without building the padded image when the border is constant. Ours: the
single-pass implementation and the ``border_mode`` / ``fill`` options.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from albumentations.core.transforms_interface import DualTransform

from reid_pipeline.data.augment._checks import (
    check_fill,
    check_positive_int,
    check_probability,
    fill_value,
)

BORDER_MODES = {
    "constant": cv2.BORDER_CONSTANT,
    "reflect": cv2.BORDER_REFLECT_101,  # torchvision's "reflect" (edge pixel not repeated)
    "replicate": cv2.BORDER_REPLICATE,
}


def shift_image(
    img: np.ndarray, dy: int, dx: int, *, fill: Any, border_mode: str, padding: tuple[int, int]
) -> np.ndarray:
    """``out[y, x] = img[y - dy, x - dx]``; outside pixels follow ``border_mode``."""
    h, w = img.shape[:2]
    if border_mode != "constant":
        py, px = padding
        padded = cv2.copyMakeBorder(img, py, py, px, px, BORDER_MODES[border_mode])
        if padded.ndim < img.ndim:  # cv2 drops a trailing singleton channel
            padded = padded[..., None]
        return np.ascontiguousarray(padded[py - dy : py - dy + h, px - dx : px - dx + w])
    out = np.empty_like(img)
    out[...] = fill_value(fill, img, "pad_crop")
    ys, yd = max(0, -dy), max(0, dy)  # source / destination start rows
    xs, xd = max(0, -dx), max(0, dx)
    hh, ww = h - abs(dy), w - abs(dx)
    if hh > 0 and ww > 0:
        out[yd : yd + hh, xd : xd + ww] = img[ys : ys + hh, xs : xs + ww]
    return out


class PadCrop(DualTransform):
    """Pad by ``padding`` then crop a random window of the input size (a random translation)."""

    def __init__(
        self,
        *,
        padding: int | tuple[int, int] = 10,
        fill: float | tuple[float, ...] = 0.0,
        border_mode: str = "constant",
        p: float = 1.0,
    ) -> None:
        owner = "pad_crop"
        p = check_probability(owner, "p", p)
        super().__init__(p=p)
        if isinstance(padding, int | np.integer) and not isinstance(padding, bool):
            padding = (int(padding), int(padding))
        if not (isinstance(padding, tuple | list) and len(padding) == 2):
            raise ValueError(
                f"pad_crop: padding must be an integer or (pad_y, pad_x), got {padding!r}"
            )
        self.padding = (
            check_positive_int(owner, "padding", padding[0], minimum=0),
            check_positive_int(owner, "padding", padding[1], minimum=0),
        )
        self.fill = check_fill(owner, "fill", fill)
        if border_mode not in BORDER_MODES:
            raise ValueError(
                f"pad_crop: border_mode must be one of {sorted(BORDER_MODES)}, got {border_mode!r}"
            )
        self.border_mode = border_mode

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("padding", "fill", "border_mode")

    def get_params(self) -> dict[str, Any]:
        py, px = self.padding
        # Offset of the crop in the padded image, uniform as in RandomCrop -> shift of the content.
        return {
            "dy": py - self.py_random.randint(0, 2 * py),
            "dx": px - self.py_random.randint(0, 2 * px),
        }

    def apply(self, img: np.ndarray, dy: int = 0, dx: int = 0, **_: Any) -> np.ndarray:
        return shift_image(
            img, dy, dx, fill=self.fill, border_mode=self.border_mode, padding=self.padding
        )

    def apply_to_mask(self, mask: np.ndarray, dy: int = 0, dx: int = 0, **_: Any) -> np.ndarray:
        return shift_image(mask, dy, dx, fill=0, border_mode=self.border_mode, padding=self.padding)

    def apply_to_keypoints(
        self, keypoints: np.ndarray, dy: int = 0, dx: int = 0, **_: Any
    ) -> np.ndarray:
        out = keypoints.copy()
        out[:, 0] += dx
        out[:, 1] += dy
        return out

    def apply_to_bboxes(
        self, bboxes: np.ndarray, dy: int = 0, dx: int = 0, **params: Any
    ) -> np.ndarray:
        # Boxes are normalised (x_min, y_min, x_max, y_max, ...); albumentations' bbox processor
        # clips and filters boxes that leave the image.
        h, w = params["shape"][:2]
        out = bboxes.copy()
        out[:, [0, 2]] += dx / w
        out[:, [1, 3]] += dy / h
        return out
