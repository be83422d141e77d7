"""A trained model as a training run writes it: ``MODEL_DIR`` (``data/06_models/<arch>/``) holds
``model.safetensors`` (the weights) and ``model_spec.json`` (what rebuilds the model: ``name``,
``num_classes``, ``kwargs``, ``cross_modality``, ``feat_dim``, ``input`` {height, width},
``params``, ``seed`` and, from runs that record it, ``weights_sha256``). See docs/inference.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reid_pipeline.errors import ConfigError, DataError, WeightsError
from reid_pipeline.io.digest import json_sha256

WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model_spec.json"
ONNX_FILE = "model.onnx"
_REQUIRED = ("name", "num_classes", "input")


def read_spec(model_dir: str | Path) -> dict[str, Any]:
    """``model_spec.json`` of ``model_dir``, checked for the keys the model needs."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError(
            f"model folder {str(model_dir)!r} does not exist: give the folder a training run "
            "wrote (data/06_models/<arch>/, holding model.safetensors and model_spec.json)"
        )
    path = model_dir / SPEC_FILE
    if not path.is_file():
        raise DataError(f"{path} is missing: a training run writes it beside {WEIGHTS_FILE}")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); restore it or retrain") from None
    return check_spec(spec, str(path))


def check_spec(spec: Any, where: str) -> dict[str, Any]:
    """``spec`` if it has every key a model needs, else one ``ConfigError`` naming ``where``."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(spec).__name__}")
    missing = [k for k in _REQUIRED if k not in spec]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}; restore the file or retrain")
    size = spec["input"]
    if not isinstance(size, dict) or not all(
        isinstance(size.get(k), int) and size[k] > 0 for k in ("height", "width")
    ):
        raise ConfigError(f"{where}: input must be {{height: int, width: int}}, got {size!r}")
    if not isinstance(spec.get("kwargs", {}), dict):
        raise ConfigError(f"{where}: kwargs must be an object, got {spec['kwargs']!r}")
    return spec


def spec_sha256(spec: dict[str, Any]) -> str:
    """The model's identity in embeddings files and index sidecars: sha256 of its spec."""
    return json_sha256(spec)


def input_size(spec: dict[str, Any]) -> tuple[int, int]:
    return int(spec["input"]["height"]), int(spec["input"]["width"])


def load_model_dir(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(model, spec)``: the model of ``path/model_spec.json`` (never downloading pretrained
    weights) with ``path/model.safetensors`` loaded strictly, in eval mode. When the spec records
    ``weights_sha256``, the loaded weights must match it (``WeightsError`` otherwise)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from reid_pipeline.io.digest import state_dict_sha256
    from reid_pipeline.models import create_model

    model_dir = Path(path)
    spec = read_spec(model_dir)
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise DataError(f"{weights} is missing: a training run writes it beside {SPEC_FILE}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{weights} cannot be read ({exc}); retrain or restore it") from None
    expected = spec.get("weights_sha256")
    if expected and state_dict_sha256(state) != expected:
        raise WeightsError(
            f"{weights} does not match the sha256 in {SPEC_FILE}: the file is damaged or from "
            "another run; retrain or restore it"
        )
    options = dict(spec.get("kwargs", {}))
    if "pretrained" in options:
        options["pretrained"] = False  # the weights come from the file, never a download
    try:
        model = create_model(str(spec["name"]), num_classes=int(spec["num_classes"]), **options)
    except ValueError as exc:
        raise ConfigError(f"{model_dir / SPEC_FILE}: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise WeightsError(
            f"{weights} does not fit the model of {SPEC_FILE} ({spec['name']}): {detail[:300]}"
        ) from None
    model.eval()
    return model, spec
