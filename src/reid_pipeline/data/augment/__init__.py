"""Custom albumentations transforms (one reference each; see every module's docstring)."""

import os

# albumentations queries PyPI for a newer version at import (2 s timeout, a warning offline);
# a training library must not touch the network. Set before the first albumentations import.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from reid_pipeline.data.augment.channel import AdaptiveGray, ChannelExchange
from reid_pipeline.data.augment.erasing import Cutout, RandomErasing
from reid_pipeline.data.augment.geometric import PadCrop

__all__ = ["AdaptiveGray", "ChannelExchange", "Cutout", "PadCrop", "RandomErasing"]
