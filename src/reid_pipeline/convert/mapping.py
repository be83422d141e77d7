"""State-dict name mappings from the toolboxes' checkpoints to this project's ``bot`` / ``agw``.

fast-reid (1.x, ``Baseline`` meta-architecture; docs/toolbox_weights.md):

==========================================  ==========================================
fast-reid                                   this project
==========================================  ==========================================
``backbone.conv1.weight``                   ``backbone.stem.0.weight``
``backbone.bn1.*``                          ``backbone.stem.1.*``
``backbone.layer{1-4}.*``                   ``backbone.layer{1-4}.*`` (same names)
``backbone.NL_{s}.{i}.{g,theta,phi}.*``     ``non_local.blocks.layer{s}.{i}.{g,theta,phi}.*``
``backbone.NL_{s}.{i}.W.{0,1}.*``           ``non_local.blocks.layer{s}.{i}.out_proj.{0,1}.*``
``heads.pool_layer.p`` (GeM, shape (1,))    ``head.pool.p`` (shape ())
``heads.bottleneck.0.*`` (BNNeck)           ``head.neck.bnneck.*``
``heads.weight`` (classifier)               ``head.neck.classifier.weight``
==========================================  ==========================================

torchreid (``resnet50``: softmax ResNet-50, last stride 2, no BNNeck):
``conv1`` / ``bn1`` -> ``backbone.stem.{0,1}``, ``layer*`` unchanged, ``classifier.weight`` ->
``head.neck.classifier.weight``; the test embedding is the pooled feature (``neck_feat:
before``), so the BNNeck, which torchreid does not have, is set to the identity (weight 1, bias 0,
running mean 0, running variance 1) and takes no part in it.

Refused with a message naming the keys (:class:`~reid_pipeline.errors.WeightsError`): any key
left unmapped (IBN / SE blocks, an embedding reduction in the head, torchreid's ``fc``, extra
heads), a shape that does not fit, a key of the project's model left without a value, and
torchreid's classifier bias unless the caller drops it (``drop_classifier_bias``: the classifier
plays no part in the test embedding).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from reid_pipeline.errors import WeightsError

TOOLBOXES = ("fastreid", "torchreid")
ARCHS = ("bot", "agw")
#: fast-reid normalises inside the model: (x - mean) / std on 0-255 pixels, ImageNet's values
FASTREID_PIXEL_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
FASTREID_PIXEL_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
#: blocks per stage -> ResNet name (Bottleneck when the blocks have a conv3)
_DEPTHS = {
    ((2, 2, 2, 2), False): "resnet18",
    ((3, 4, 6, 3), False): "resnet34",
    ((3, 4, 6, 3), True): "resnet50",
    ((3, 4, 23, 3), True): "resnet101",
}


@dataclass
class Converted:
    """A toolbox state dict renamed for this project's model ``arch`` built with ``options``."""

    arch: str
    num_classes: int
    options: dict[str, Any]
    state_dict: dict[str, Tensor]
    #: what the conversion set or dropped that has no counterpart, in words (model_spec.json)
    notes: list[str] = field(default_factory=list)


def _refuse(toolbox: str, what: str, keys: list[str]) -> WeightsError:
    shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    return WeightsError(f"{toolbox} checkpoint: {what}: {shown} (docs/toolbox_weights.md)")


def _resnet_name(state: Mapping[str, Tensor], prefix: str, toolbox: str) -> str:
    blocks = []
    for stage in range(1, 5):
        found = {
            int(m.group(1))
            for k in state
            if (m := re.match(rf"{re.escape(prefix)}layer{stage}\.(\d+)\.", k))
        }
        blocks.append(max(found) + 1 if found else 0)
    bottleneck = f"{prefix}layer1.0.conv3.weight" in state
    name = _DEPTHS.get((tuple(blocks), bottleneck))
    if name is None:
        raise WeightsError(
            f"{toolbox} checkpoint: a ResNet with {blocks} blocks per stage "
            f"({'bottleneck' if bottleneck else 'basic'} blocks) is not one of this project's "
            f"trunks (resnet18/34/50/101)"
        )
    return name


def _apply(
    state: Mapping[str, Tensor], rules: list[tuple[str, str]], toolbox: str
) -> tuple[dict[str, Tensor], list[str]]:
    """Rename by the first matching ``(pattern, replacement)``; return the renamed tensors and
    the keys no rule matched."""
    out, unmapped = {}, []
    for key, value in state.items():
        for pattern, repl in rules:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
        else:
            unmapped.append(key)
    return out, unmapped


def fastreid_state(
    state: Mapping[str, Tensor],
    arch: str,
    *,
    last_stride: int = 1,
    gem_p: float | None = None,
) -> Converted:
    """Map a fast-reid ``Baseline`` state dict (BoT: ``Base-bagtricks``, AGW: ``Base-AGW``).

    ``last_stride`` is not in the weights (fast-reid's BoT and AGW configs use 1). For ``agw``
    the GeM exponent comes from ``heads.pool_layer.p`` (``GeneralizedMeanPoolingP``); a fixed
    ``GeneralizedMeanPooling`` stores none, so ``gem_p`` (its default 3) is used.
    """
    tb = "fast-reid"
    _check_arch(arch)
    pixel = {k: state[k] for k in ("pixel_mean", "pixel_std") if k in state}
    for key, expected in (("pixel_mean", FASTREID_PIXEL_MEAN), ("pixel_std", FASTREID_PIXEL_STD)):
        if key in pixel and not torch.allclose(
            pixel[key].flatten().float(), torch.tensor(expected), atol=1e-3
        ):
            raise WeightsError(
                f"fast-reid checkpoint: {key} is {pixel[key].flatten().tolist()}, not ImageNet's "
                f"{list(expected)}; this project's test transform normalises with ImageNet's "
                "mean and std, so these weights would see other inputs than they were trained on"
            )
    state = {k: v for k, v in state.items() if k not in pixel}
    nl_keys = [k for k in state if k.startswith("backbone.NL_")]
    if arch == "bot" and nl_keys:
        raise _refuse(tb, "non-local blocks have no place in bot (use --arch agw)", nl_keys)
    gem = "heads.pool_layer.p" in state
    if arch == "bot" and gem:
        raise _refuse(
            tb, "a GeM pooling exponent has no place in bot (--arch agw)", ["heads.pool_layer.p"]
        )
    if "heads.bottleneck.0.weight" in state and state["heads.bottleneck.0.weight"].ndim != 1:
        raise _refuse(
            tb,
            "the head reduces the embedding (HEADS.EMBEDDING_DIM > 0), which bot and agw "
            "do not have",
            [k for k in state if k.startswith("heads.bottleneck.")],
        )
    rules = [
        (r"backbone\.conv1\.weight", "backbone.stem.0.weight"),
        (
            r"backbone\.bn1\.(weight|bias|running_mean|running_var|num_batches_tracked)",
            r"backbone.stem.1.\1",
        ),
        (
            r"backbone\.(layer[1-4]\.\d+\.(?:conv[123]|bn[123]|downsample\.[01])\."
            r"(?:weight|bias|running_mean|running_var|num_batches_tracked))",
            r"backbone.\1",
        ),
        (
            r"backbone\.NL_([1-4])\.(\d+)\.(g|theta|phi)\.(weight|bias)",
            r"non_local.blocks.layer\1.\2.\3.\4",
        ),
        (
            r"backbone\.NL_([1-4])\.(\d+)\.W\.([01])\."
            r"(weight|bias|running_mean|running_var|num_batches_tracked)",
            r"non_local.blocks.layer\1.\2.out_proj.\3.\4",
        ),
        (r"heads\.pool_layer\.p", "head.pool.p"),
        (
            r"heads\.bottleneck\.0\.(weight|bias|running_mean|running_var|num_batches_tracked)",
            r"head.neck.bnneck.\1",
        ),
        (r"heads\.weight", "head.neck.classifier.weight"),
    ]
    out, unmapped = _apply(state, rules, tb)
    if unmapped:
        raise _refuse(tb, "keys with no counterpart in this project's model", unmapped)
    if "head.neck.classifier.weight" not in out:
        raise _refuse(tb, "no classifier (heads.weight); is this a fast-reid Baseline?", [])
    options: dict[str, Any] = {
        "backbone": _resnet_name(state, "backbone.", tb),
        "pretrained": False,
        "last_stride": last_stride,
        "neck_feat": "after",  # fast-reid's eval returns the BNNeck output
        "stem_pool": "fastreid",  # MaxPool2d(3, 2, padding=0, ceil_mode=True), not torchvision's
    }
    notes = []
    if arch == "agw":
        counts = [
            len({k.split(".")[2] for k in nl_keys if k.startswith(f"backbone.NL_{s}.")})
            for s in range(1, 5)
        ]
        options["non_local"] = counts
        if any(counts):
            stage = next(s for s in range(1, 5) if counts[s - 1])
            options["non_local_inter_channels"] = int(
                state[f"backbone.NL_{stage}.0.g.weight"].shape[0]
            )
        options["pool"] = "gem"
        if gem:
            out["head.pool.p"] = out["head.pool.p"].reshape(())
            options["gem_learn_p"] = True
        else:
            p = 3.0 if gem_p is None else float(gem_p)
            options["gem_p"], options["gem_learn_p"] = p, False
            notes.append(f"no GeM exponent in the checkpoint: fixed p = {p} (--gem-p)")
    return Converted(arch, int(out["head.neck.classifier.weight"].shape[0]), options, out, notes)


def torchreid_state(
    state: Mapping[str, Tensor], arch: str, *, drop_classifier_bias: bool = False
) -> Converted:
    """Map a torchreid ``resnet50`` (or resnet18/34/101) state dict onto ``bot`` with the
    pooled feature as the test embedding; torchreid has no AGW."""
    tb = "torchreid"
    _check_arch(arch)
    if arch != "bot":
        raise WeightsError(
            "torchreid has no AGW model (its ResNets are softmax baselines without non-local "
            "blocks or GeM): convert a torchreid resnet50 with --arch bot"
        )
    state = dict(state)
    notes = []
    if "classifier.bias" in state:
        if not drop_classifier_bias:
            raise _refuse(
                tb,
                "this project's classifiers have no bias (it plays no part in the test "
                "embedding: pass --drop-classifier-bias to convert without it)",
                ["classifier.bias"],
            )
        del state["classifier.bias"]
        notes.append("torchreid's classifier.bias dropped (no part in the test embedding)")
    rules = [
        (r"conv1\.weight", "backbone.stem.0.weight"),
        (r"bn1\.(weight|bias|running_mean|running_var|num_batches_tracked)", r"backbone.stem.1.\1"),
        (
            r"(layer[1-4]\.\d+\.(?:conv[123]|bn[123]|downsample\.[01])\."
            r"(?:weight|bias|running_mean|running_var|num_batches_tracked))",
            r"backbone.\1",
        ),
        (r"classifier\.weight", "head.neck.classifier.weight"),
    ]
    out, unmapped = _apply(state, rules, tb)
    if unmapped:
        what = "keys with no counterpart in this project's bot"
        if any(k.startswith("fc.") for k in unmapped):
            what += " (resnet50_fc512's fc layer: only the plain resnet50 maps onto bot)"
        raise _refuse(tb, what, unmapped)
    if "head.neck.classifier.weight" not in out:
        raise _refuse(tb, "no classifier.weight; is this a torchreid ResNet?", [])
    width = int(out["head.neck.classifier.weight"].shape[1])
    out |= {
        "head.neck.bnneck.weight": torch.ones(width),
        "head.neck.bnneck.bias": torch.zeros(width),
        "head.neck.bnneck.running_mean": torch.zeros(width),
        "head.neck.bnneck.running_var": torch.ones(width),
        "head.neck.bnneck.num_batches_tracked": torch.tensor(0),
    }
    notes.append("BNNeck set to the identity (torchreid has none; neck_feat: before)")
    options = {
        "backbone": _resnet_name(state, "", tb),
        "pretrained": False,
        "last_stride": 2,  # torchreid's resnet50
        "neck_feat": "before",
        "pool": "avg",
    }
    return Converted("bot", int(out["head.neck.classifier.weight"].shape[0]), options, out, notes)


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise WeightsError(f"--arch must be one of {list(ARCHS)}, got {arch!r}")


def convert_state(toolbox: str, state: Mapping[str, Tensor], arch: str, **kw: Any) -> Converted:
    """``fastreid_state`` or ``torchreid_state`` by name."""
    if toolbox == "fastreid":
        return fastreid_state(state, arch, **kw)
    if toolbox == "torchreid":
        return torchreid_state(state, arch, **kw)
    raise WeightsError(f"--from must be one of {list(TOOLBOXES)}, got {toolbox!r}")
