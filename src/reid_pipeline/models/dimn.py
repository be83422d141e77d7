"""DIMN - Deep Information Mining Network (ICASSP 2024).

Published (the authors' README and figures only; no code was ever released):
- the image feature is split horizontally into 2, 3, 4, 5 and 6 equal parts (all five);
- an RFM (relation fusion module) relates each part to the whole body and concatenates part and
  global vectors, so every RFM output carries local and global information;
- a DFM (diverse fusion module) with two branches: branch 1 fuses global and part features;
  branch 2 uses the fused features to find the most salient region (usually the torso) and erases
  it, forcing the network to use the rest (bags, hand-held items, shoes);
- CE + batch-hard triplet, SGD, batch 128; Market-1501 R1 94.7 / mAP 87.2.

Everything below the level of that description is OUR DESIGN (docs/models.md), and every
uncertain choice is a builder parameter:
- Trunk: ResNet, last stride 1 -> ``F`` ``(B, C4, H, W)`` (2048 x 24 x 8 at 384 x 128) and the
  layer-3 output ``L3``.
- Global ``g = reduce(pool(F))``: 1x1 conv C4 -> ``embed_dim`` (256) + BN + ReLU; ``pool`` max.
- Parts: for n in ``granularities`` (2..6), the map cut into n horizontal stripes that partition
  its rows (``stripes="partition"``, the paper's "equal segments": no row in two stripes; when n
  does not divide the height the stripes differ by one row, the longer ones spread evenly, see
  ``layers/parts.py``; ``"adaptive"`` is adaptive pooling, whose stripes overlap by one row
  there), each stripe ``pool``-ed over its rows and columns and reduced
  to ``embed_dim`` by a 1x1 conv + BN + ReLU: one reducer per granularity (default) or one shared
  (``share_part_reducer``).
- RFM for part i of granularity n (``rfm``): ``"concat"`` (the paper's "concatenates the feature
  vectors of the parts with the feature vector of the whole"): ``r = [p ; g]``, 2D wide;
  ``"residual"`` (ours, before): ``r = p + phi([p ; g])``, phi = 1x1 conv 2D -> D + BN + ReLU, ONE
  phi for all parts of all granularities, D wide. Below, R is r's width (2D or D).
- DFM branch 1: ``g_n = g + psi_n([g ; mean_i r_{n,i}])``, psi_n = Linear D+R -> D + BN + ReLU, one
  per granularity. A classifier on each ``g_n`` and on each ``r_{n,i}``. Triplet features, one per
  granularity: ``cat(g_n, r_{n,1..n})`` (``triplet_feats="concat"``) or ``g_n`` (``"fused"``).
- DFM branch 2 (``branch2``): the branch-1 fused descriptor ``cat_n g_n`` is projected to a
  channel gate ``sigmoid(Linear(G*D -> C4))``; the saliency head (1x1 conv C4 -> 512 + BN + ReLU ->
  1x1 conv 512 -> 1) runs on ``F * gate`` -> ``S`` ``(B, 1, H, W)``. Per sample the arg-max cell of
  ``S`` gives a window of ``round(erase_height * H)`` rows (default 1/3 of the map) and
  ``erase_width`` of the width (default full width) centred on it (``layers/erasing.py``); the
  window is zeroed in a copy of ``L3``, which goes through a separate copy of layer 4
  (``erased_layer4``, initialised from the trunk's layer 4) -> ``branch2_pool`` (GAP) -> 1x1 conv
  C4 -> 512 + BN + ReLU -> classifier + triplet.
  The arg-max is not differentiable, so on its own the saliency head would never learn. With
  ``saliency_supervision`` (default) the gated map is attention-pooled with ``softmax(S)`` over
  the cells and classified (one more logits entry): the head learns to peak on identity-
  discriminative cells and its arg-max becomes meaningful. Without it the window placement is
  untrained (a learned-nothing, random-like drop; the gate and head then get no gradient, so DDP
  needs ``find_unused_parameters``).
- Heads (``neck``): ``"bnneck"`` (BoT: CE on the BN'd feature through a bias-free classifier,
  triplet on the pre-BN feature) or ``"linear"`` (a Linear classifier with bias on the feature).
- Test embedding (``test_parts``): any of ``"fused"`` (all g_n), ``"rfm"`` (the RFM vectors, or
  their mean per granularity with ``test_rfm="mean"``, default), ``"branch2"`` and ``"global"``
  (g), concatenated; ``test_neck="after"`` takes the BN'd vectors where a BNNeck exists. The model
  returns it un-normalised; the evaluation L2-normalises. ``erase_at_test`` (default true) applies
  the saliency erasing at test time too, so the branch-2 vector describes the same erased view it
  was trained on (the window is deterministic, unlike random dropping).
- Parameter names: ``erased_layer4`` starts from the same (ImageNet) weights as ``backbone.layer4``;
  an optimiser group meant for the pretrained trunk should match ``^(backbone|erased_layer4)[.]``.

Training output: ``logits`` = [fused g_n for each n] + [r_{n,i} for each n, i] + [branch 2] +
[saliency attention]; ``feats`` = [triplet feature per granularity] + [branch 2];
``extras`` = ``{"saliency": S, "keep_mask": window keep-mask}`` (detached, for visualisation).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid_pipeline.models.base import ReidModel, ReidOutput
from reid_pipeline.models.layers.backbone import ResNetBackbone
from reid_pipeline.models.layers.bnneck import BNNeck
from reid_pipeline.models.layers.checks import (
    check_bool,
    check_choice,
    check_fraction,
    check_int_list,
    check_names,
    check_positive_int,
)
from reid_pipeline.models.layers.erasing import argmax_window_mask, resize_mask, window_extent
from reid_pipeline.models.layers.parts import POOLS, SPLITS, horizontal_parts
from reid_pipeline.models.registry import register_model

TEST_PARTS = ("fused", "rfm", "branch2", "global")


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


def _linear_bn_relu(in_dim: int, out_dim: int) -> nn.Sequential:
    linear = nn.Linear(in_dim, out_dim, bias=False)
    nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity="relu")
    return nn.Sequential(linear, nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True))


class _LinearHead(nn.Module):
    """``neck="linear"``: a Linear classifier with bias on the feature; returns (feat, logits)."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(in_dim, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor]:
        return feat, self.classifier(feat)  # (B, D), (B, num_classes)


def _pool(x: Tensor, kind: str) -> Tensor:
    fn = F.adaptive_max_pool2d if kind == "max" else F.adaptive_avg_pool2d
    return fn(x, 1)  # (B, C, 1, 1)


@register_model("dimn")
class DIMN(ReidModel):
    """DIMN, our design of the published description (``create_model("dimn", ...)``).

    Options (keyword-only; the module docstring says what each one changes): ``backbone``,
    ``pretrained``, ``last_stride``; ``granularities`` (stripe counts, default 2..6); ``stripes``
    (``"partition"``: equal segments that never share a row, or ``"adaptive"``); ``rfm``
    (``"concat"``: ``[p ; g]``, the paper's, or ``"residual"``: ``p + phi([p ; g])``);
    ``embed_dim`` (D, 256: global, part, RFM and fused width); ``pool`` (``"max"``/``"avg"`` for
    the global and part pooling); ``share_part_reducer`` (one part reducer for all granularities
    instead of one each); ``neck`` (``"bnneck"``/``"linear"``); ``triplet_feats``
    (``"concat"``/``"fused"``); ``branch2`` (suppression branch on/off); ``branch2_dim`` (512);
    ``branch2_pool`` (``"avg"``); ``saliency_dim`` (512); ``saliency_supervision``;
    ``erase_height`` / ``erase_width`` (window size as fractions of the map, 1/3 and 1);
    ``erase_at_test``; ``test_parts`` (default ``["fused", "rfm", "branch2"]``, without
    ``"branch2"`` when ``branch2`` is false); ``test_rfm`` (``"mean"``/``"all"``); ``test_neck``
    (``"after"``/``"before"`` the BNNeck).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool | str | Path = False,
        last_stride: int = 1,
        granularities: Sequence[int] = (2, 3, 4, 5, 6),
        stripes: str = "partition",
        rfm: str = "concat",
        embed_dim: int = 256,
        pool: str = "max",
        share_part_reducer: bool = False,
        neck: str = "bnneck",
        triplet_feats: str = "concat",
        branch2: bool = True,
        branch2_dim: int = 512,
        branch2_pool: str = "avg",
        saliency_dim: int = 512,
        saliency_supervision: bool = True,
        erase_height: float = 1 / 3,
        erase_width: float = 1.0,
        erase_at_test: bool = True,
        test_parts: Sequence[str] | None = None,
        test_rfm: str = "mean",
        test_neck: str = "after",
    ) -> None:
        super().__init__()
        grans = check_int_list("granularities", granularities, distinct=True)
        check_choice("pool", pool, POOLS)
        check_choice("stripes", stripes, SPLITS)
        check_choice("rfm", rfm, ("concat", "residual"))
        check_choice("branch2_pool", branch2_pool, POOLS)
        check_choice("neck", neck, ("bnneck", "linear"))
        check_choice("triplet_feats", triplet_feats, ("concat", "fused"))
        check_choice("test_rfm", test_rfm, ("mean", "all"))
        check_choice("test_neck", test_neck, ("after", "before"))
        for key, value in (
            ("embed_dim", embed_dim),
            ("branch2_dim", branch2_dim),
            ("saliency_dim", saliency_dim),
        ):
            check_positive_int(key, value)
        for key, flag in (
            ("share_part_reducer", share_part_reducer),
            ("branch2", branch2),
            ("saliency_supervision", saliency_supervision),
            ("erase_at_test", erase_at_test),
        ):
            check_bool(key, flag)
        check_fraction("erase_height", erase_height)
        check_fraction("erase_width", erase_width)
        parts = ["fused", "rfm", "branch2"] if branch2 else ["fused", "rfm"]
        if test_parts is not None:
            parts = check_names("test_parts", test_parts, TEST_PARTS)
        if "branch2" in parts and not branch2:
            raise ValueError("test_parts includes 'branch2' but branch2 is false")

        self.num_classes = num_classes
        self.granularities = grans
        self.stripes, self.rfm_mode = stripes, rfm
        self.pool, self.branch2_pool, self.triplet_feats = pool, branch2_pool, triplet_feats
        self.branch2, self.saliency_supervision = branch2, saliency_supervision
        self.erase_height, self.erase_width, self.erase_at_test = (
            erase_height,
            erase_width,
            erase_at_test,
        )
        self.test_parts, self.test_rfm, self.test_neck = parts, test_rfm, test_neck
        self.backbone = ResNetBackbone(backbone, pretrained=pretrained, last_stride=last_stride)
        width = self.backbone.out_channels[3]
        d, n_gran, n_parts = embed_dim, len(grans), sum(grans)
        head = BNNeck if neck == "bnneck" else _LinearHead

        self.global_reduce = _conv_bn_relu(width, d)
        self.part_reducers = nn.ModuleList(
            _conv_bn_relu(width, d) for _ in range(1 if share_part_reducer else n_gran)
        )
        # phi (residual RFM only); R = the RFM output's width
        self.rfm = _conv_bn_relu(2 * d, d) if rfm == "residual" else None
        r_dim = d if rfm == "residual" else 2 * d
        self.fusers = nn.ModuleList(_linear_bn_relu(d + r_dim, d) for _ in grans)  # psi_n
        self.fused_necks = nn.ModuleList(head(d, num_classes) for _ in grans)
        self.part_necks = nn.ModuleList(head(r_dim, num_classes) for _ in range(n_parts))
        if branch2:
            self.gate = nn.Linear(n_gran * d, width)
            nn.init.normal_(self.gate.weight, std=0.001)  # starts as a uniform 0.5 gate
            nn.init.zeros_(self.gate.bias)
            self.saliency_head = nn.Sequential(
                _conv_bn_relu(width, saliency_dim), nn.Conv2d(saliency_dim, 1, 1)
            )
            self.erased_layer4 = copy.deepcopy(self.backbone.layer4)
            self.branch2_reduce = _conv_bn_relu(width, branch2_dim)
            self.branch2_neck = head(branch2_dim, num_classes)
            if saliency_supervision:
                self.saliency_neck = head(width, num_classes)
        rfm_dim = n_gran * r_dim if test_rfm == "mean" else n_parts * r_dim
        dims = {"fused": n_gran * d, "rfm": rfm_dim, "branch2": branch2_dim, "global": d}
        self.feat_dim = sum(dims[p] for p in parts)

    # ------------------------------------------------------------------ branches
    def _branch1(self, f: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        """-> g ``(B, D)``, fused ``[g_n (B, D)]``, RFM outputs ``(B, R, sum n)``."""
        g = self.global_reduce(_pool(f, self.pool)).flatten(1)  # (B, D)
        pooled = [
            horizontal_parts(f, n, pool=self.pool, split=self.stripes)[..., None]
            for n in self.granularities
        ]
        if len(self.part_reducers) == 1:
            p = self.part_reducers[0](torch.cat(pooled, dim=2))  # (B, D, sum n, 1)
        else:
            p = torch.cat([red(x) for red, x in zip(self.part_reducers, pooled, strict=True)], 2)
        g_map = g[:, :, None, None].expand(-1, -1, p.shape[2], 1)  # (B, D, sum n, 1)
        pg = torch.cat([p, g_map], dim=1)  # (B, 2D, sum n, 1)
        r = (pg if self.rfm is None else p + self.rfm(pg)).squeeze(3)  # (B, R, sum n)
        r_by_gran = torch.split(r, self.granularities, dim=2)  # [(B, D, n)]
        fused = [
            g + psi(torch.cat([g, r_n.mean(dim=2)], dim=1))  # (B, D)
            for psi, r_n in zip(self.fusers, r_by_gran, strict=True)
        ]
        return g, fused, r

    def _branch2(
        self, l3: Tensor, f: Tensor, fused: list[Tensor], erase: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """-> branch-2 vector ``(B, B2)``, saliency ``(B, 1, H, W)``, gated F, keep-mask."""
        gate = torch.sigmoid(self.gate(torch.cat(fused, dim=1)))  # (B, C4)
        f_gated = f * gate[:, :, None, None]  # (B, C4, H, W)
        saliency = self.saliency_head(f_gated)  # (B, 1, H, W)
        h, w = saliency.shape[-2:]
        keep = argmax_window_mask(
            saliency,
            rows=window_extent(h, self.erase_height),
            cols=window_extent(w, self.erase_width),
        )  # (B, 1, H, W)
        if erase:
            l3 = l3 * resize_mask(keep, (l3.shape[2], l3.shape[3]))  # (B, C3, H3, W3)
        e = self.erased_layer4(l3)  # (B, C4, H, W)
        v = self.branch2_reduce(_pool(e, self.branch2_pool)).flatten(1)  # (B, B2)
        return v, saliency, f_gated, keep

    def _trunk(self, images: Tensor) -> tuple[Tensor, Tensor]:
        bb = self.backbone
        l3 = bb.layer3(bb.layer2(bb.layer1(bb.forward_stem(images))))  # (B, C3, H, W)
        return l3, bb.layer4(l3)  # (B, C4, H, W)

    # ------------------------------------------------------------------ forward
    def forward(
        self, images: Tensor, targets: Tensor | None = None, modality: Tensor | None = None
    ) -> Tensor | ReidOutput:
        """Train: ``ReidOutput`` (targets are not needed); eval: ``(B, feat_dim)`` embedding."""
        self.check_inputs(images, modality)
        l3, f = self._trunk(images)
        g, fused, r = self._branch1(f)
        fused_heads = [neck(x) for neck, x in zip(self.fused_necks, fused, strict=True)]
        part_heads = [neck(r[:, :, j]) for j, neck in enumerate(self.part_necks)]
        b2 = None
        if self.branch2:
            b2 = self._branch2(l3, f, fused, erase=self.training or self.erase_at_test)
        if not self.training:
            return self._embed(
                g=g, fused=fused, fused_heads=fused_heads, r=r, part_heads=part_heads, b2=b2
            )

        logits = [lg for _, lg in fused_heads] + [lg for _, lg in part_heads]
        if self.triplet_feats == "concat":
            r_by_gran = torch.split(r, self.granularities, dim=2)
            feats = [
                torch.cat([g_n, r_n.flatten(1)], dim=1)  # (B, D + n * R)
                for g_n, r_n in zip(fused, r_by_gran, strict=True)
            ]
        else:
            feats = list(fused)
        extras: dict[str, Tensor | list[Tensor]] = {}
        if b2 is not None:
            v, saliency, f_gated, keep = b2
            logits.append(self.branch2_neck(v)[1])
            feats.append(v)
            if self.saliency_supervision:
                att = torch.softmax(saliency.flatten(2), dim=2)  # (B, 1, H*W)
                salient = (f_gated.flatten(2) * att).sum(dim=2)  # (B, C4)
                logits.append(self.saliency_neck(salient)[1])
            extras = {"saliency": saliency.detach(), "keep_mask": keep}
        return ReidOutput(logits=logits, feats=feats, extras=extras)

    def _embed(
        self,
        *,
        g: Tensor,
        fused: list[Tensor],
        fused_heads: list[tuple[Tensor, Tensor | None]],
        r: Tensor,
        part_heads: list[tuple[Tensor, Tensor | None]],
        b2: tuple[Tensor, Tensor, Tensor, Tensor] | None,
    ) -> Tensor:
        after = self.test_neck == "after"
        out: list[Tensor] = []
        for part in self.test_parts:
            if part == "global":
                out.append(g)  # (B, D), no neck
            elif part == "fused":
                out += [bn for bn, _ in fused_heads] if after else fused
            elif part == "rfm":
                rr = torch.stack([bn for bn, _ in part_heads], dim=2) if after else r  # (B, R, N)
                if self.test_rfm == "mean":
                    out += [x.mean(dim=2) for x in torch.split(rr, self.granularities, dim=2)]
                else:
                    out.append(rr.transpose(1, 2).flatten(1))  # (B, N * R), part-major
            else:
                assert b2 is not None  # guarded in __init__: "branch2" needs branch2=True
                out.append(self.branch2_neck(b2[0])[0] if after else b2[0])  # (B, B2)
        return torch.cat(out, dim=1)  # (B, feat_dim), un-normalised
