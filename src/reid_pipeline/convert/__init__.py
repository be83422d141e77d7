"""Weights from the toolboxes: fast-reid's and torchreid's BoT / AGW checkpoints as this
project's model folders (``model.safetensors`` + ``model_spec.json``), so a published model is
scored with this project's protocols, exported and searched (docs/toolbox_weights.md).

``python -m reid_pipeline.convert --from fastreid|torchreid --arch bot|agw CHECKPOINT --out DIR``

Checkpoints are read with ``torch.load(..., weights_only=True)`` (no code in them runs). The
name mapping (:mod:`reid_pipeline.convert.mapping`) refuses what it cannot map; the converted
weights must fill every tensor of the project's model, shapes included.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from reid_pipeline.convert.mapping import ARCHS, TOOLBOXES, Converted, convert_state
from reid_pipeline.errors import CheckpointError, DataError, WeightsError
from reid_pipeline.experiment.modelling import build_model
from reid_pipeline.io.digest import state_dict_sha256

__all__ = [
    "ARCHS",
    "TOOLBOXES",
    "Converted",
    "build_converted",
    "convert_checkpoint",
    "convert_state",
    "read_checkpoint",
    "write_model_dir",
]

#: what each toolbox's test transform feeds its models (height, width)
DEFAULT_INPUT = (256, 128)


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The state dict of a toolbox checkpoint: fast-reid's ``{"model": ...}``, torchreid's
    ``{"state_dict": ...}`` or a bare state dict; a ``module.`` prefix (DataParallel) is
    removed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} cannot be read with torch.load(weights_only=True) ({first}); if you trust "
            "the file, save only its state dict from a Python session "
            "(torch.save(ckpt['model'], 'weights.pth')) and convert that"
        ) from None
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path} holds no state dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"{path}: not a state dict, these entries are not tensors: {bad[:5]} (a fast-reid "
            "checkpoint keeps its weights under 'model', a torchreid one under 'state_dict')"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def build_converted(converted: Converted) -> nn.Module:
    """The project's model with the converted weights; every tensor of the model must be
    given, with its shape."""
    model = build_model(
        converted.arch, num_classes=converted.num_classes, options=converted.options, seed=0
    )
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted.state_dict))
    extra = sorted(set(converted.state_dict) - set(expected))
    shapes = [
        f"{k} {tuple(v.shape)} (model {tuple(expected[k].shape)})"
        for k, v in converted.state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    for what, keys in (
        ("the checkpoint gives no value for", missing),
        ("the model has no", extra),
        ("shapes do not fit:", shapes),
    ):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            raise WeightsError(
                f"converted {converted.arch}: {what} {shown} (model options "
                f"{converted.options}; docs/toolbox_weights.md)"
            )
    state = {k: v.to(expected[k].dtype) for k, v in converted.state_dict.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def write_model_dir(
    out: str | Path,
    converted: Converted,
    *,
    input_size: tuple[int, int] = DEFAULT_INPUT,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model.safetensors``, ``model_spec.json`` and ``training_summary.json`` (what a
    training run writes in ``data/06_models/<arch>/``); returns the spec."""
    from safetensors.torch import save_file

    model = build_converted(converted)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    spec = {
        "name": converted.arch,
        "num_classes": converted.num_classes,
        "kwargs": converted.options,
        "cross_modality": False,
        "feat_dim": int(model.feat_dim),
        "input": {"height": int(input_size[0]), "width": int(input_size[1])},
        "params": sum(p.numel() for p in model.parameters()),
        "seed": 0,
        "arch": converted.arch,
        "recipe": "converted",
        "run_id": "",
        "weights_sha256": state_dict_sha256(state),
        "converted_from": {**dict(source or {}), "notes": converted.notes},
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.safetensors.tmp"
    save_file(state, str(tmp))
    tmp.replace(out / "model.safetensors")
    for name, doc in (
        ("model_spec.json", spec),
        ("training_summary.json", {"converted_from": spec["converted_from"], "epochs": 0}),
    ):
        tmp = out / f"{name}.tmp"
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out / name)
    return spec


def convert_checkpoint(
    toolbox: str,
    arch: str,
    checkpoint: str | Path,
    out: str | Path,
    *,
    input_size: tuple[int, int] = DEFAULT_INPUT,
    **options: Any,
) -> dict[str, Any]:
    """Read, map, check and write: ``checkpoint`` of ``toolbox`` as the model folder ``out``.
    ``options`` go to the mapping (``last_stride``, ``gem_p``, ``drop_classifier_bias``)."""
    if toolbox not in TOOLBOXES:
        raise WeightsError(f"--from must be one of {list(TOOLBOXES)}, got {toolbox!r}")
    state = read_checkpoint(checkpoint)
    converted = convert_state(toolbox, state, arch, **options)
    source = {"toolbox": toolbox, "checkpoint": Path(checkpoint).name}
    return write_model_dir(out, converted, input_size=input_size, source=source)
