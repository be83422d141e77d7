"""ResNet trunks for re-identification.

``ResNetBackbone``: torchvision's ResNet (18/34/50/101) without its pooling and classifier, with a
configurable last stride (1 is the ReID standard: a 256x128 input gives a 16x8 layer-4 map).
``TwoStreamResNet``: the cross-modality baseline's trunk (AGW for visible-infrared): one stem
(conv1/bn1/relu/maxpool) per modality, shared layer1-4, routed per sample by ``modality``.

``stem_pool`` picks the stem's 3x3 stride-2 max-pool: ``"torchvision"`` (padding 1, the
torchvision / original ResNet layout every recipe here uses) or ``"fastreid"`` (padding 0 and
``ceil_mode``, fast-reid's ResNet stem; for weights converted from fast-reid's model zoo). On a
256x128 input both give a 64x32 map; values differ at the borders.

``pretrained`` is ``False``, ``"imagenet"`` (torchvision's weights, fetched by torchvision on a
machine with internet) or a path to a local weights file (safetensors, or a torch file read with
``weights_only=True``; a file can never run code).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from reid_pipeline.models.layers.routing import ModalitySplit

_RESNETS = {
    "resnet18": (torchvision.models.resnet18, "ResNet18_Weights", (64, 128, 256, 512)),
    "resnet34": (torchvision.models.resnet34, "ResNet34_Weights", (64, 128, 256, 512)),
    "resnet50": (torchvision.models.resnet50, "ResNet50_Weights", (256, 512, 1024, 2048)),
    "resnet101": (torchvision.models.resnet101, "ResNet101_Weights", (256, 512, 1024, 2048)),
}


STEM_POOLS = ("torchvision", "fastreid")


def backbone_names() -> list[str]:
    return sorted(_RESNETS)


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a weights file safely: safetensors, or a torch file with ``weights_only=True``.

    A checkpoint dict holding the weights under ``state_dict`` / ``model`` is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"cannot read weights file {path} with weights_only=True ({exc}); expected a "
            "safetensors file or a torch state dict"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors")
    return obj


def _set_last_stride(resnet: nn.Module, last_stride: int) -> None:
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
    block = resnet.layer4[0]
    conv = block.conv2 if hasattr(block, "conv3") else block.conv1  # Bottleneck vs BasicBlock
    conv.stride = (last_stride, last_stride)
    if block.downsample is not None:
        block.downsample[0].stride = (last_stride, last_stride)


def _check_stem_pool(stem_pool: str) -> None:
    if stem_pool not in STEM_POOLS:
        raise ValueError(f"stem_pool must be one of {list(STEM_POOLS)}, got {stem_pool!r}")


def _build_torchvision_resnet(name: str, pretrained: bool | str | Path) -> nn.Module:
    if name not in _RESNETS:
        raise ValueError(f"unknown backbone {name!r}; expected one of {backbone_names()}")
    fn, weights_enum, _ = _RESNETS[name]
    if pretrained == "imagenet":
        weights = getattr(torchvision.models, weights_enum).IMAGENET1K_V1
        return fn(weights=weights)
    resnet = fn(weights=None)
    if pretrained in (False, None, "none", ""):
        return resnet
    if pretrained is True:
        raise ValueError(
            "pretrained must be False, 'imagenet' or a path to a weights file, got True"
        )
    state = load_state_dict_file(pretrained)
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = {
        k: v
        for k, v in resnet.state_dict().items()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    if not any(k in state for k in own):
        raise ValueError(
            f"weights file {pretrained} has no key of a {name} (expected keys like "
            "'conv1.weight', 'layer1.0.bn1.weight')"
        )
    for key, value in own.items():
        if key in state and tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(
                f"weights file {pretrained} does not fit a {name}: {key!r} has shape "
                f"{tuple(state[key].shape)} in the file, {tuple(value.shape)} in the model "
                "(a different architecture?)"
            )
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(
            f"weights file {pretrained} lacks {len(missing)} {name} keys, e.g. {missing[:3]}"
        )
    resnet.load_state_dict(state, strict=False)
    return resnet


class ResNetBackbone(nn.Module):
    """ResNet trunk: ``stem`` -> ``layer1..layer4``; ``out_channels[i]`` is layer i+1's width."""

    def __init__(
        self,
        name: str = "resnet50",
        *,
        pretrained: bool | str | Path = False,
        last_stride: int = 1,
        stem_pool: str = "torchvision",
    ) -> None:
        super().__init__()
        _check_stem_pool(stem_pool)  # before any weights file is read
        resnet = _build_torchvision_resnet(name, pretrained)
        _set_last_stride(resnet, last_stride)
        if stem_pool == "fastreid":  # parameter-free: the weights are the same either way
            resnet.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        self.name = name
        self.stem_pool = stem_pool
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        self.out_channels: tuple[int, int, int, int] = _RESNETS[name][2]

    @property
    def layers(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_stem(self, x: Tensor, modality: Tensor | ModalitySplit | None = None) -> Tensor:
        return self.stem(x)

    def forward(self, x: Tensor, modality: Tensor | ModalitySplit | None = None) -> Tensor:
        x = self.forward_stem(x, modality)  # (B, 64, H/4, W/4)
        for layer in self.layers:
            x = layer(x)
        return x  # (B, C4, H/16, W/16) with last stride 1


class TwoStreamResNet(ResNetBackbone):
    """Cross-modality trunk: ``stem`` (visible) and ``stem_ir`` (infrared), shared layer1-4.

    Each sample goes through the stem of its modality (``modality[i]`` 0 or 1; see
    ``layers/routing.py``); both stems start from the same (ImageNet or file) weights.
    """

    def __init__(
        self,
        name: str = "resnet50",
        *,
        pretrained: bool | str | Path = False,
        last_stride: int = 1,
        stem_pool: str = "torchvision",
    ) -> None:
        super().__init__(name, pretrained=pretrained, last_stride=last_stride, stem_pool=stem_pool)
        self.stem_ir = copy.deepcopy(self.stem)

    def forward_stem(self, x: Tensor, modality: Tensor | ModalitySplit | None = None) -> Tensor:
        """``modality``: the batch's :class:`ModalitySplit` (no host sync) or its tensor."""
        split = ModalitySplit.coerce(modality, "TwoStreamResNet")
        return split.route(x, self.stem, self.stem_ir)  # (B, 64, H/4, W/4)


def build_backbone(
    name: str = "resnet50",
    *,
    pretrained: bool | str | Path = False,
    last_stride: int = 1,
    two_stream: bool = False,
    stem_pool: str = "torchvision",
) -> ResNetBackbone:
    cls = TwoStreamResNet if two_stream else ResNetBackbone
    return cls(name, pretrained=pretrained, last_stride=last_stride, stem_pool=stem_pool)
