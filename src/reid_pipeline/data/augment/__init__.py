"""Custom albumentations transforms (one reference each; see every module's docstring)."""

from reid_pipeline.data.augment.channel import AdaptiveGray, ChannelExchange
from reid_pipeline.data.augment.erasing import Cutout, RandomErasing
from reid_pipeline.data.augment.geometric import PadCrop

__all__ = ["AdaptiveGray", "ChannelExchange", "Cutout", "PadCrop", "RandomErasing"]
