"""Tiny contract-following model, dataset, criterion and loader for the engine tests.

Imported by the test modules (``from .tiny import ...``) and by the subprocess scripts next to
this file (which put this folder on ``sys.path``).
"""

from __future__ import annotations

import random

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from reid_pipeline.losses import Criterion, build_criterion
from reid_pipeline.models.base import ReidModel, ReidOutput
from reid_pipeline.models.layers.bnneck import BNNeck


class TinyModel(ReidModel):
    """conv -> BN -> GAP -> 16-d -> BNNeck; ``cross_modality`` adds a per-modality input scale."""

    def __init__(
        self, num_classes: int = 4, *, feat_dim: int = 16, cross_modality: bool = False
    ) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.num_classes = num_classes
        self.cross_modality = cross_modality
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, feat_dim, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.modality_scale = nn.Parameter(torch.ones(2)) if cross_modality else None
        self.head = BNNeck(feat_dim, num_classes)
        self.seen_modality: list[Tensor | None] = []

    def forward(
        self, images: Tensor, targets: Tensor | None = None, modality: Tensor | None = None
    ) -> ReidOutput | Tensor:
        self.check_inputs(images, modality)
        self.seen_modality.append(None if modality is None else modality.detach().cpu())
        if self.modality_scale is not None and modality is not None:
            images = images * self.modality_scale[modality].view(-1, 1, 1, 1)  # (B, 3, H, W)
        feat = self.backbone(images)  # (B, D)
        bn_feat, logits = self.head(feat)  # (B, D), (B, num_classes)
        if not self.training:
            return bn_feat
        return ReidOutput(logits=[logits], feats=[feat])


class TinyCE(nn.Module):
    def forward(self, output: ReidOutput, pids: Tensor, modality: Tensor | None = None) -> Tensor:
        return sum(nn.functional.cross_entropy(lg, pids) for lg in output.logits)


class NaNAt(nn.Module):
    """Returns 0 normally and NaN at the given (call) index - to test the NaN stop."""

    def __init__(self, at_call: int) -> None:
        super().__init__()
        self.at_call = at_call
        self.calls = 0

    def forward(self, output: ReidOutput, pids: Tensor, modality: Tensor | None = None) -> Tensor:
        self.calls += 1
        zero = output.logits[0].sum() * 0.0
        return zero + float("nan") if self.calls == self.at_call else zero


def make_criterion(num_classes: int = 4, feat_dim: int = 16, *, center: bool = True) -> Criterion:
    """The project's label-smoothed CE, plus BoT's centre loss (weight 0.01 here, its own SGD)."""
    spec: list[dict] = [{"name": "ce", "epsilon": 0.1}]
    if center:
        spec.append({"name": "center", "weight": 0.01})
    return build_criterion(spec, context={"num_classes": num_classes, "feat_dims": [feat_dim]})


class TinyDataset(Dataset):
    """``n`` random 3x16x8 images over ``num_classes`` identities, alternating modality.

    Augmentation draws from three RNGs to exercise the resume seeding: torch's global generator
    (noise), Python's ``random`` (flip) and a private ``random.Random`` re-seeded by ``reseed``
    (like albumentations' ``Compose``). ``log`` records the indices read (main process only).
    """

    def __init__(self, n: int = 32, num_classes: int = 4, *, augment: bool = True) -> None:
        g = torch.Generator().manual_seed(1234)
        self.images = torch.randn(n, 3, 16, 8, generator=g)
        self.pids = torch.arange(n) % num_classes
        self.augment = augment
        self.private = random.Random(0)
        self.log: list[int] = []

    def reseed(self, seed: int) -> None:
        self.private.seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        self.log.append(i)
        img = self.images[i]
        if self.augment:
            img = img + 0.1 * torch.randn_like(img)
            if random.random() < 0.5:
                img = img.flip(2)
            img = img * (1.0 + 0.1 * self.private.random())
        return {
            "images": img,
            "pids": self.pids[i],
            "camids": torch.tensor(i % 3),
            "modality": torch.tensor(i % 2),
            "index": torch.tensor(i),
        }


def make_loader(
    dataset: Dataset, *, batch_size: int = 8, shuffle: bool = True, num_workers: int = 0
) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, drop_last=True
    )


OPTIMIZER = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
SCHEDULER = {
    "name": "step",
    "milestones": [2],
    "gamma": 0.1,
    "warmup_epochs": 1,
    "warmup_factor": 0.1,
}
