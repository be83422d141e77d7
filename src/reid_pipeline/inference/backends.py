"""Embedders: a trained model behind one call, ``(images (B, 3, H, W) float32, modality) ->
embeddings (B, D) float32``, run by PyTorch (a ``MODEL_DIR``) or by onnxruntime (an exported
``.onnx`` file, or a ``MODEL_DIR`` holding ``model.onnx``; no PyTorch forward)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reid_pipeline.errors import ConfigError, DataError, WeightsError
from reid_pipeline.inference.model_dir import (
    ONNX_FILE,
    SPEC_FILE,
    check_spec,
    input_size,
    load_model_dir,
    read_spec,
    spec_sha256,
)

BACKENDS = ("torch", "onnxruntime")
MODALITIES = {"visible": 0, "infrared": 1}


@dataclass
class Embedder:
    """``spec``: the model's ``model_spec.json``; ``source``: the file or folder it came from."""

    spec: dict[str, Any]
    source: str
    backend: str
    cross: bool
    _run: Any = field(repr=False)

    @property
    def spec_hash(self) -> str:
        return spec_sha256(self.spec)

    @property
    def cross_modality(self) -> bool:
        return self.cross

    @property
    def size(self) -> tuple[int, int]:
        return input_size(self.spec)

    def modality_code(self, modality: str) -> int | None:
        """0 / 1 for a visible-infrared model, None for the others (which take no modality)."""
        if modality not in MODALITIES:
            raise ConfigError(f"modality must be one of {list(MODALITIES)}, got {modality!r}")
        if not self.cross_modality:
            if modality != "visible":
                raise ConfigError(
                    f"model {self.spec['name']!r} ({self.source}) is a single-modality model: "
                    "--modality infrared applies to visible-infrared models only"
                )
            return None
        return MODALITIES[modality]

    def __call__(self, images: np.ndarray, modality: int | None, *, flip: bool = False) -> Any:
        feats = self._run(images, modality)  # (B, D) float32
        if flip:
            flipped = np.ascontiguousarray(images[..., ::-1])  # (B, 3, H, W) mirrored
            feats = (feats + self._run(flipped, modality)) / np.float32(2)
        return np.asarray(feats, dtype=np.float32)


def _torch_embedder(model_dir: Path) -> Embedder:
    import torch

    model, spec = load_model_dir(model_dir)
    cross = bool(getattr(model, "cross_modality", False))

    def run(images: np.ndarray, modality: int | None) -> np.ndarray:
        x = torch.from_numpy(images)
        mod = None
        if cross:
            mod = torch.full((x.shape[0],), int(modality or 0), dtype=torch.int64)
        with torch.inference_mode():
            return model(x, modality=mod).float().numpy()

    return Embedder(spec=spec, source=str(model_dir), backend="torch", cross=cross, _run=run)


def _onnx_embedder(path: Path) -> Embedder:
    import onnxruntime as ort

    from reid_pipeline.inference.onnx_export import onnx_spec

    onnx_path = path / ONNX_FILE if path.is_dir() else path
    if not onnx_path.is_file():
        what = f"{path} holds no {ONNX_FILE}" if path.is_dir() else f"{path} does not exist"
        raise DataError(f"{what}: make it with `reid-pipeline export --model MODEL_DIR --out FILE`")
    spec = check_spec(onnx_spec(onnx_path), f"{onnx_path} (metadata)")
    if path.is_dir() and (path / SPEC_FILE).is_file():
        beside = read_spec(path)
        if spec_sha256(beside) != spec_sha256(spec):
            raise WeightsError(
                f"{onnx_path} was exported from another model than {path / SPEC_FILE}: export "
                "it again"
            )
    options = ort.SessionOptions()
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    names = {i.name for i in session.get_inputs()}
    cross = "modality" in names

    def run(images: np.ndarray, modality: int | None) -> np.ndarray:
        feed = {"images": np.ascontiguousarray(images, dtype=np.float32)}
        if cross:
            feed["modality"] = np.full((images.shape[0],), int(modality or 0), dtype=np.int64)
        return session.run(["embedding"], feed)[0]

    return Embedder(spec=spec, source=str(onnx_path), backend="onnxruntime", cross=cross, _run=run)


def open_embedder(model: str | Path, backend: str = "torch") -> Embedder:
    """The embedder of ``model``: a ``MODEL_DIR`` for ``torch``; an ``.onnx`` file or a
    ``MODEL_DIR`` holding ``model.onnx`` for ``onnxruntime``."""
    path = Path(model)
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "onnxruntime":
        return _onnx_embedder(path)
    if path.is_file() and path.suffix == ".onnx":
        raise ConfigError(f"{path} is an ONNX file: run it with --backend onnxruntime")
    return _torch_embedder(path)
