"""Reference embeddings from the toolboxes' own model code (run as a script, in a subprocess, so
no toolbox module or stub ever enters the test process).

``python toolbox_reference.py fastreid|torchreid bot|agw SOURCE_ROOT OUT_DIR`` builds the
toolbox's model from the files of its unpacked sdist (``SOURCE_ROOT``), loading only the modules
the model needs: the packages whose ``__init__`` imports optional dependencies (yacs, gdown,
termcolor, ...) are replaced by empty package modules pointing at their folders, and fast-reid's
``configurable`` decorator by the identity. The model is random-initialised with a seed (every
BatchNorm's statistics and affine too, the non-local ``W`` included, so every mapped tensor moves
the output), saved as the toolbox's checkpoint holds it (fast-reid: ``{"model": state_dict,
...}``, torchreid: ``{"state_dict": ..., "epoch": ...}``) to ``OUT_DIR/checkpoint.pth``, and its
eval-mode embedding of seeded random images to ``OUT_DIR/reference.pt``
(``{"images": normalised (B, 3, 256, 128), "embedding": (B, D)}``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn

NUM_CLASSES = 11
SIZE = (256, 128)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _package(name: str, folder: Path, **attrs: object) -> None:
    module = types.ModuleType(name)
    module.__path__ = [str(folder)]
    module.__dict__.update(attrs)
    sys.modules[name] = module


def _randomise(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 1.0)
            module.weight.data.copy_(torch.rand(n, generator=gen) * 0.5 + 0.5)
            if module.bias is not None and module.bias.requires_grad:
                module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
        elif isinstance(module, nn.Conv2d) and module.bias is not None:
            module.bias.data.copy_(torch.randn(module.out_channels, generator=gen) * 0.1)


def fastreid_model(root: Path, arch: str) -> nn.Module:
    pkg = root / "fastreid"
    sys.modules["termcolor"] = types.ModuleType("termcolor")
    sys.modules["termcolor"].colored = lambda text, *a, **k: text
    _package("fastreid", pkg)
    _package("fastreid.config", pkg / "config", configurable=lambda init: init)
    _package("fastreid.modeling", pkg / "modeling")
    _package("fastreid.modeling.backbones", pkg / "modeling" / "backbones", build_backbone=None)
    _package("fastreid.modeling.heads", pkg / "modeling" / "heads", build_heads=None)
    _package("fastreid.modeling.meta_arch", pkg / "modeling" / "meta_arch")
    sys.path.insert(0, str(root))
    resnet = importlib.import_module("fastreid.modeling.backbones.resnet")
    head = importlib.import_module("fastreid.modeling.heads.embedding_head")
    baseline = importlib.import_module("fastreid.modeling.meta_arch.baseline")
    torch.manual_seed(0)
    agw = arch == "agw"
    # Base-bagtricks / Base-AGW: ResNet-50, last stride 1, BN, non-local in AGW; BNNeck head
    backbone = resnet.ResNet(
        1, "BN", False, False, agw, resnet.Bottleneck, [3, 4, 6, 3], [0, 2, 3, 0]
    )
    heads = head.EmbeddingHead(
        feat_dim=2048,
        embedding_dim=0,
        num_classes=NUM_CLASSES,
        neck_feat="before",
        pool_type="GeneralizedMeanPoolingP" if agw else "GlobalAvgPool",
        cls_type="Linear",
        scale=1,
        margin=0,
        with_bnneck=True,
        norm_type="BN",
    )
    model = baseline.Baseline(
        backbone=backbone,
        heads=heads,
        pixel_mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
        pixel_std=[0.229 * 255, 0.224 * 255, 0.225 * 255],
    )
    _randomise(model)
    if agw:
        heads.pool_layer.p.data.fill_(3.4)
    return model


def torchreid_model(root: Path) -> nn.Module:
    path = root / "torchreid" / "reid" / "models" / "resnet.py"
    spec = importlib.util.spec_from_file_location("torchreid_resnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.resnet50(NUM_CLASSES, loss="softmax", pretrained=False)
    _randomise(model)
    return model


def main(toolbox: str, arch: str, root: str, out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if toolbox == "fastreid":
        model = fastreid_model(Path(root), arch)
        checkpoint = {"model": model.state_dict(), "iteration": 0}
    else:
        model = torchreid_model(Path(root))
        checkpoint = {"state_dict": model.state_dict(), "epoch": 1}
    torch.save(checkpoint, out_dir / "checkpoint.pth")
    model.eval()
    images = torch.randn(2, 3, *SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        # fast-reid's Baseline normalises 0-255 pixels itself
        pixels = (images * STD + MEAN) * 255 if toolbox == "fastreid" else images
        embedding = model(pixels)
    torch.save({"images": images, "embedding": embedding}, out_dir / "reference.pt")


if __name__ == "__main__":
    main(*sys.argv[1:5])
