"""Channel augmentations of visible-infrared ReID.

Reference: M. Ye, W. Ruan, B. Du, M. Z. Shou, "Channel Augmented Joint Learning for
Visible-Infrared Recognition", ICCV 2021 (CAJ), and its public code (``ChannelAug.py`` of the
authors' cross-modal ReID baseline).

- ``ChannelExchange`` (visible images; CAJ's ``ChannelExchange``): replace the image by one of its
  R, G or B channels copied to all three channels, or (``gray=True``) by its grayscale version,
  the four (or three) choices equally likely. CAJ's ``gray=2`` is ``gray=False`` here, its
  ``gray=3`` is ``gray=True``. CAJ always applies it to a second visible view; our dataset returns
  one image per record, so the default ``p=0.5`` keeps colour in half the visible samples.
- ``AdaptiveGray`` (infrared images; CAJ's ``ChannelAdapGray``): choose one of four cases with
  equal probability: copy R, G or B to all channels, or, in the fourth case, convert to grayscale
  with probability ``gray_p`` (CAJ's ``probability``, default 0.5) and otherwise leave the image
  unchanged. CAJ applies it to every infrared image (our ``p=1.0`` default).

Ours: CAJ runs these on the normalised tensor, where copying a normalised channel into the other
channels gives an image that is not gray once un-normalised; we run them on the uint8 RGB image
before normalisation, which gives the gray-looking single-channel images the paper describes. The
grayscale conversion is OpenCV's ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B, CAJ writes 0.2989 /
0.5870 / 0.1140).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from albumentations.core.transforms_interface import ImageOnlyTransform

from reid_pipeline.data.augment._checks import check_probability

GRAY = 3  # choice index meaning "grayscale" (0, 1, 2 are R, G, B)
KEEP = -1  # choice index meaning "unchanged"


def apply_channel_choice(img: np.ndarray, choice: int, *, owner: str) -> np.ndarray:
    """Apply a channel choice (0 R, 1 G, 2 B, 3 gray, -1 unchanged) to an HWC RGB image."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{owner} expects an HxWx3 RGB image, got shape {img.shape}")
    if choice == KEEP:
        return img
    single = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if choice == GRAY else img[:, :, choice]
    return np.repeat(single[:, :, None], 3, axis=2)


class ChannelExchange(ImageOnlyTransform):
    """One RGB channel (or the grayscale image) replicated to 3 channels; see module docstring."""

    def __init__(self, *, gray: bool = True, p: float = 0.5) -> None:
        p = check_probability("channel_exchange", "p", p)
        super().__init__(p=p)
        if not isinstance(gray, bool):
            raise ValueError(f"channel_exchange: gray must be true or false, got {gray!r}")
        self.gray = gray

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("gray",)

    def get_params(self) -> dict[str, Any]:
        return {"choice": self.py_random.randint(0, GRAY if self.gray else GRAY - 1)}

    def apply(self, img: np.ndarray, choice: int = KEEP, **_: Any) -> np.ndarray:
        return apply_channel_choice(img, choice, owner="channel_exchange")


class AdaptiveGray(ImageOnlyTransform):
    """CAJ's ``ChannelAdapGray`` for infrared images; see the module docstring."""

    def __init__(self, *, gray_p: float = 0.5, p: float = 1.0) -> None:
        p = check_probability("adaptive_gray", "p", p)
        super().__init__(p=p)
        self.gray_p = check_probability("adaptive_gray", "gray_p", gray_p)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("gray_p",)

    def get_params(self) -> dict[str, Any]:
        choice = self.py_random.randint(0, GRAY)
        if choice == GRAY and not self.py_random.random() < self.gray_p:
            choice = KEEP
        return {"choice": choice}

    def apply(self, img: np.ndarray, choice: int = KEEP, **_: Any) -> np.ndarray:
        return apply_channel_choice(img, choice, owner="adaptive_gray")
