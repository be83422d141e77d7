"""PMM - Progressive Multi-stage feature Mix (Zhang et al., "Progressive Multi-stage Feature Mix for
Person Re-Identification", ICASSP 2021, arXiv:2007.08779).

Known from the official code (github.com/crazydemo/Progressive-Multi-stage-Feature-Mix-for-Person-
Re-Identification, ``models/progressive_networks.py``, class ``BFE``; read for the facts below,
not copied):

- Trunk: ResNet-50 conv1..layer3, then layer4 rebuilt with stride 1 and loaded with the ImageNet
  layer-4 weights -> ``x`` ``(B, 2048, 24, 8)`` at 384 x 128. Here: ``ResNetBackbone`` with
  ``last_stride=1`` (the same thing).
- Stage I: GAP(x) -> 1x1 Conv2d(2048, 512) WITH bias -> BatchNorm2d -> ReLU -> ``f1`` (512) ->
  ``Linear(512, num_classes)`` WITH bias. Order: conv, BN, ReLU.
- One extra ``Bottleneck(2048, 512)`` (torchvision's block, no downsample, PyTorch default init,
  not ImageNet) on ``x`` -> ``z``, shared by stages II and III.
- Stage II: Grad-CAM of stage I's ground-truth logits w.r.t. ``x`` (gradient averaged over H, W as
  channel weights, ReLU of the weighted sum, one backward of the summed ground-truth logits),
  A-Hard-Mix of ``z`` with 3 x 2 blocks, top 3 (see ``layers/hard_mix.py``) -> ``z2``; GMP (global
  MAX pooling) -> ``Linear(2048, 512)`` WITH bias -> BatchNorm1d -> ReLU -> ``f2`` ->
  ``Linear(512, num_classes)`` with bias.
- Stage III: Grad-CAM of stage II's ground-truth logits w.r.t. the mixed ``z2``; the same mix,
  with freshly drawn partners, applied to the ORIGINAL ``z`` -> ``z3``; GMP -> its own
  Linear + BN1d + ReLU -> ``f3`` -> classifier.
- Pooling per stage: GAP for stage I, GMP for stages II and III.
- The triplet loss takes the SAME post-ReLU 512-d ``f_i`` the classifier sees (no BNNeck):
  ``feats = [f1, f2, f3]``. Losses: label-smoothed CE + soft-margin (``margin=None``) batch-hard
  triplet per stage, all weights 1, summed.
- Labels are never mixed (the official code computes a lambda but never uses it).
- Test embedding: ``cat(f1, f2, f3)`` (1536-d), no mixing, un-normalised. The official evaluator
  (``trainers/evaluator.py``) ranks these raw features by squared Euclidean distance, without any
  L2 normalisation, and cuts the mAP at rank 50 (the ``paper`` recipe: ``evaluation.metric:
  euclidean``, the same ranking, and ``map_max_rank: 50``).
- Official training loop: one pass over the identities per epoch (``RandomIdentitySampler``, the
  ``paper`` recipe's ``sampler.epoch: identities``), fp32.
- Initialisation: Kaiming-normal for the reductions and classifiers (``fan_in`` for convs,
  ``fan_out`` for Linear layers, biases 0), BN weights ~ N(1, 0.02) and biases 0.
- Parameters: 32,276,749 with 751 classes on ResNet-50 (the paper's "about 32.3M").

Ours (the official code hard-codes them or does it differently):
- Grad-CAM through ``torch.autograd.grad(score, feature, retain_graph=True)`` instead of a
  ``backward()`` inside ``forward``: a training forward leaves no gradient in any parameter.
- The partner is chosen by pid (any sample of another identity), not by batch position (the
  official code assumed K = 4 consecutive images per identity). K, the images per identity, only
  matters to the PK sampler; the model needs at least two identities per batch.
- Block size, top-k, the reduction width, the number of stages (1, 2, 3) and mixing on/off are
  builder parameters; the map size follows the input (any input size whose map has at least
  ``top_k`` blocks; 384 x 128 is the paper's).

Training output: ``ReidOutput(logits=[l1, l2, l3], feats=[f1, f2, f3])`` (one entry per stage) and,
when mixing, ``extras`` = ``{"cams": [cam_I, cam_II], "keep_masks": [m2, m3], "partners": [p2,
p3]}`` (detached ``(B, H, W)`` CAMs, ``(B, 1, H, W)`` keep-masks, ``LongTensor[B]`` partner
indices) for visualisation and tests; no loss reads them.

Autograd: a training forward with mixing needs gradients to compute the CAMs. Under
``torch.no_grad()`` the model makes the trunk output a graph leaf and computes the stage heads with
autograd enabled, so the outputs are the same values, returned detached; under
``torch.inference_mode()`` a training forward with mixing is refused (use ``model.eval()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck

from reid_pipeline.models.base import ReidModel, ReidOutput
from reid_pipeline.models.layers.backbone import ResNetBackbone
from reid_pipeline.models.layers.checks import check_bool, check_choice, check_positive_int
from reid_pipeline.models.layers.gradcam import (
    check_targets,
    grad_cam,
    target_score,
    targets_out_of_range,
)
from reid_pipeline.models.layers.hard_mix import (
    AttentiveHardMix,
    check_partners,
    has_lonely_sample,
)
from reid_pipeline.models.registry import register_model


def _init_kaiming(module: nn.Module) -> None:
    """The official PMM initialisation of reductions and classifiers."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@register_model("pmm")
class PMM(ReidModel):
    """Three-stage PMM (``create_model("pmm", num_classes=..., **options)`` builds it).

    Options (keyword-only): ``backbone`` / ``pretrained`` / ``last_stride`` (1 is the paper's
    trunk) as in ``layers/backbone.py``. ``num_stages``: 1 (stage I only), 2 or 3 (the paper).
    ``mixing``: A-Hard-Mix on/off (off: stages II/III see the un-mixed ``z``; no Grad-CAM, no
    targets needed). ``block_size``: (rows, cols) of a mixing block in feature-map cells (paper
    3 x 2). ``top_k``: blocks replaced per sample (paper 3). ``embed_dim``: width of each stage's
    ``f_i`` (paper 512); ``feat_dim = embed_dim * num_stages``. See the module docstring for what
    is the paper's and what is ours, and docs/models.md for sizes and switches.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool | str | Path = False,
        last_stride: int = 1,
        num_stages: int = 3,
        mixing: bool = True,
        block_size: Sequence[int] = (3, 2),
        top_k: int = 3,
        embed_dim: int = 512,
    ) -> None:
        super().__init__()
        check_choice("num_stages", num_stages, (1, 2, 3))
        check_positive_int("embed_dim", embed_dim)
        check_bool("mixing", mixing)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.num_stages = num_stages
        self.mixing = mixing
        self.embed_dim = embed_dim
        self.feat_dim = embed_dim * num_stages
        self.backbone = ResNetBackbone(backbone, pretrained=pretrained, last_stride=last_stride)
        width = self.backbone.out_channels[3]

        # stage I: GAP -> 1x1 conv + BN + ReLU -> f1 -> classifier (all with bias, official)
        self.reduction1 = nn.Sequential(
            nn.Conv2d(width, embed_dim, 1), nn.BatchNorm2d(embed_dim), nn.ReLU(inplace=True)
        )
        self.classifier1 = nn.Linear(embed_dim, num_classes)
        self.mix = AttentiveHardMix(block_size=block_size, top_k=top_k)
        if num_stages >= 2:
            # shared by stages II and III; Bottleneck(width, width // 4) keeps the width
            self.extra_block = Bottleneck(width, width // Bottleneck.expansion)
            self.reduction2 = self._linear_reduction(width, embed_dim)
            self.classifier2 = nn.Linear(embed_dim, num_classes)
        if num_stages >= 3:
            self.reduction3 = self._linear_reduction(width, embed_dim)
            self.classifier3 = nn.Linear(embed_dim, num_classes)
        for name, child in self.named_children():
            if name.startswith(("reduction", "classifier")):
                _init_kaiming(child)

    @staticmethod
    def _linear_reduction(width: int, embed_dim: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(width, embed_dim), nn.BatchNorm1d(embed_dim), nn.ReLU(inplace=True)
        )

    def _stage(self, k: int, pooled: Tensor) -> tuple[Tensor, Tensor]:
        feat = getattr(self, f"reduction{k}")(pooled).flatten(1)  # (B, D)
        return feat, getattr(self, f"classifier{k}")(feat)  # (B, D), (B, num_classes)

    def forward(
        self, images: Tensor, targets: Tensor | None = None, modality: Tensor | None = None
    ) -> Tensor | ReidOutput:
        self.check_inputs(images, modality)
        if not self.training:
            return self._embed(images)
        use_cam = self.mixing and self.num_stages >= 2
        if use_cam:
            if targets is None:
                raise ValueError(
                    "PMM's training forward needs targets (the batch's relabelled pids): the "
                    "Grad-CAM of stages II/III uses the ground-truth logits"
                )
            if torch.is_inference_mode_enabled():
                raise RuntimeError(
                    "PMM's training forward computes Grad-CAM and cannot run under "
                    "torch.inference_mode(); call model.eval() to extract embeddings"
                )
        pids = None
        if use_cam and targets is not None:
            pids = targets.to(device=images.device, dtype=torch.long)
            self._check_pids(pids, images.shape[0])
        grad_enabled = torch.is_grad_enabled()
        x = self.backbone(images)  # (B, C4, H, W)
        with torch.set_grad_enabled(grad_enabled or use_cam):
            out = self._train_heads(x, pids)
        if not grad_enabled:
            out.logits = [t.detach() for t in out.logits]
            out.feats = [t.detach() for t in out.feats]
        return out

    def _check_pids(self, pids: Tensor, batch: int) -> None:
        """The Grad-CAM targets must be class indices and the mix needs two identities; both are
        read in one host sync, once per forward (the stages then skip their own checks)."""
        if pids.shape != (batch,):
            raise ValueError(
                f"targets must have shape ({batch},) to match the logits, got {tuple(pids.shape)}"
            )
        if bool(targets_out_of_range(pids, self.num_classes) | has_lonely_sample(pids)):
            check_targets(pids, self.num_classes)
            check_partners(pids)

    def _train_heads(self, x: Tensor, pids: Tensor | None) -> ReidOutput:
        """Stages I-III; A-Hard-Mix guided by Grad-CAM when ``pids`` is given (else no mixing)."""
        if pids is not None and not x.requires_grad:  # no_grad caller or frozen trunk
            x = x.detach().requires_grad_(True)  # a leaf: the CAM only needs d score / d x
        f1, l1 = self._stage(1, F.adaptive_avg_pool2d(x, 1))  # GAP (B, C4, 1, 1) -> (B, D)
        logits, feats = [l1], [f1]
        cams: list[Tensor] = []
        keep_masks: list[Tensor] = []
        partners: list[Tensor] = []
        if self.num_stages >= 2:
            z = self.extra_block(x)  # (B, C4, H, W), shared by stages II and III
            z2 = z
            if pids is not None:
                cams.append(grad_cam(target_score(l1, pids, check=False), x))  # (B, H, W)
                z2, keep, partner = self.mix(z, cams[-1], pids, check=False)  # (B, C4, H, W)
                keep_masks.append(keep)
                partners.append(partner)
            f2, l2 = self._stage(2, F.adaptive_max_pool2d(z2, 1).flatten(1))  # (B, D), (B, N)
            logits.append(l2)
            feats.append(f2)
            if self.num_stages == 3:
                z3 = z
                if pids is not None:
                    # Grad-CAM w.r.t. the MIXED z2; the mix is applied to the ORIGINAL z
                    cams.append(grad_cam(target_score(l2, pids, check=False), z2))
                    z3, keep, partner = self.mix(z, cams[-1], pids, check=False)
                    keep_masks.append(keep)
                    partners.append(partner)
                f3, l3 = self._stage(3, F.adaptive_max_pool2d(z3, 1).flatten(1))  # (B, D), (B, N)
                logits.append(l3)
                feats.append(f3)
        extras: dict[str, Tensor | list[Tensor]] = {}
        if cams:
            extras = {"cams": cams, "keep_masks": keep_masks, "partners": partners}
        return ReidOutput(logits=logits, feats=feats, extras=extras)

    def _embed(self, images: Tensor) -> Tensor:
        x = self.backbone(images)  # (B, C4, H, W)
        feats = [self.reduction1(F.adaptive_avg_pool2d(x, 1)).flatten(1)]  # (B, D)
        if self.num_stages >= 2:
            gmp = F.adaptive_max_pool2d(self.extra_block(x), 1).flatten(1)  # (B, C4)
            feats += [getattr(self, f"reduction{k}")(gmp) for k in range(2, self.num_stages + 1)]
        return torch.cat(feats, dim=1)  # (B, D * num_stages), un-normalised
