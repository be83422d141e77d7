"""ONNX export of a model's eval graph (``reid-pipeline export``), checked with onnxruntime.

The graph: input ``images`` float32 (B, 3, H, W) normalised as the test transform does, plus
``modality`` int64 (B,) (0 visible, 1 infrared) for visible-infrared models; output ``embedding``
float32 (B, feat_dim), the eval-mode embedding PyTorch returns. The batch axis is dynamic; H and W
are the model's training input (``model_spec.json``). The spec itself travels in the file's
metadata (``reid_pipeline.model_spec``, ``reid_pipeline.spec_sha256``), so an ``.onnx`` file is
self-contained for ``reid-pipeline embed --backend onnxruntime``.

How the graph is made (torch.export through ``torch.onnx.export(dynamo=True)``):

- Adaptive pooling to an output that does not divide the input (DIMN's horizontal stripes, part
  pooling) has no ONNX operator; it is decomposed on the exported program into one max / mean
  per output cell over the cell's static window (PyTorch's windows: start ``floor(i * H / o)``,
  end ``ceil((i + 1) * H / o)``), which gives the same numbers.
- Visible-infrared models route each sample through the layers of its modality, and the split of
  a batch is a host read (``ModalitySplit.of``) that a static graph cannot contain. The exported
  graph runs the model on the whole batch once as visible and once as infrared (the split of a
  one-modality batch needs no read) and picks each sample's row by its ``modality``: eval-mode
  models treat samples independently, so the rows equal the routed forward's; the check below
  compares them on a mixed batch. It costs two forwards per batch for those models.

Every export is checked: onnxruntime on a mixed batch of seeded random images (a batch size other
than the one traced) against PyTorch eager; a maximum absolute difference of ``tolerance`` (1e-4)
or more removes the file and raises.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reid_pipeline.errors import ReidError
from reid_pipeline.inference.model_dir import input_size, spec_sha256

TOLERANCE = 1e-4
OPSET = 18
META_SPEC = "reid_pipeline.model_spec"
META_HASH = "reid_pipeline.spec_sha256"


class ExportError(ReidError):
    """The exported graph does not reproduce the PyTorch model (or cannot be made)."""


@contextlib.contextmanager
def _one_modality_split(modality: int) -> Iterator[None]:
    """While tracing: every ``ModalitySplit.of`` describes a batch of ``modality`` only, without
    reading the tensor (its values are the constant the wrapper passed)."""
    from reid_pipeline.models.layers import routing

    original = routing.ModalitySplit.__dict__["of"]

    def of(cls: Any, values: Tensor) -> Any:
        n = values.shape[0]
        return cls(values, 0 if modality else n, n if modality else 0, None, None)

    routing.ModalitySplit.of = classmethod(of)  # type: ignore[method-assign]
    try:
        yield
    finally:
        routing.ModalitySplit.of = original  # type: ignore[method-assign]


class SingleModalityGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)


class CrossModalityGraph(nn.Module):
    """Both routes on the whole batch, each sample's row picked by its modality."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, modality: Tensor) -> Tensor:
        with _one_modality_split(0):
            visible = self.model(images, modality=torch.zeros_like(modality))  # (B, D)
        with _one_modality_split(1):
            infrared = self.model(images, modality=torch.ones_like(modality))  # (B, D)
        return torch.where((modality == 1).unsqueeze(1), infrared, visible)  # (B, D)


def _windows(size: int, out: int) -> list[tuple[int, int]]:
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


def _adaptive_pool(x: Tensor, output_size: Any, reduce: str) -> Tensor:
    h, w = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    oh, ow = int(oh or h), int(ow or w)
    rows = []
    for y0, y1 in _windows(h, oh):
        cells = []
        for x0, x1 in _windows(w, ow):
            cell = x[..., y0:y1, x0:x1]
            if reduce == "max":
                cells.append(cell.amax(dim=(-2, -1), keepdim=True))
            else:
                cells.append(cell.mean(dim=(-2, -1), keepdim=True))
        rows.append(torch.cat(cells, dim=-1))
    return torch.cat(rows, dim=-2)


def _max_pool_decomposition(x: Tensor, output_size: Any) -> tuple[Tensor, Tensor]:
    out = _adaptive_pool(x, output_size, "max")
    return out, torch.zeros(out.shape, dtype=torch.int64, device=x.device)  # indices unused


def _avg_pool_decomposition(x: Tensor, output_size: Any) -> Tensor:
    return _adaptive_pool(x, output_size, "mean")


def _exported_program(graph: nn.Module, example: tuple[Tensor, ...]) -> Any:
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes = tuple({0: batch} for _ in example)
    program = torch.export.export(graph, example, dynamic_shapes=shapes, strict=False)
    aten = torch.ops.aten
    table = {
        aten.adaptive_max_pool2d.default: _max_pool_decomposition,
        aten._adaptive_avg_pool2d.default: _avg_pool_decomposition,
    }
    return program.run_decompositions(table)


def _inputs(spec: dict[str, Any], n: int, seed: int) -> tuple[Tensor, Tensor]:
    height, width = input_size(spec)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, height, width, generator=g)  # (n, 3, H, W), normalised scale
    modality = torch.arange(n, dtype=torch.int64) % 2  # (n,) mixed
    return images, modality


def check_onnx(
    path: str | Path, model: nn.Module, spec: dict[str, Any], *, n: int = 5, seed: int = 1
) -> float:
    """Max abs difference between onnxruntime on ``path`` and ``model`` on a batch of ``n``."""
    import onnxruntime as ort

    images, modality = _inputs(spec, n, seed)
    cross = bool(getattr(model, "cross_modality", False))
    with torch.inference_mode():
        reference = model(images, modality=modality if cross else None).float().numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"images": images.numpy()}
    if cross:
        feed["modality"] = modality.numpy()
    got = session.run(["embedding"], feed)[0]
    if got.shape != reference.shape:
        raise ExportError(f"{path}: ONNX output shape {got.shape}, PyTorch {reference.shape}")
    return float(np.abs(got - reference).max())


def export_onnx(
    model: nn.Module,
    spec: dict[str, Any],
    out: str | Path,
    *,
    check: bool = True,
    tolerance: float = TOLERANCE,
    opset: int = OPSET,
) -> float | None:
    """Write ``model``'s eval graph to ``out`` (atomically) and return the checked max abs
    difference from PyTorch (None without ``check``)."""
    import onnx

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    cross = bool(getattr(model, "cross_modality", False))
    images, modality = _inputs(spec, 2, seed=0)
    graph: nn.Module = CrossModalityGraph(model) if cross else SingleModalityGraph(model)
    example = (images, modality) if cross else (images,)
    names = ["images", "modality"] if cross else ["images"]
    try:
        program = _exported_program(graph, example)
        onnx_program = torch.onnx.export(
            program,
            example,
            dynamo=True,
            input_names=names,
            output_names=["embedding"],
            opset_version=opset,
            optimize=False,
            verbose=False,
        )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"ONNX export of model {spec.get('name')!r} failed: {type(exc).__name__}: {first}"
        ) from exc
    proto = onnx_program.model_proto
    meta = {META_SPEC: json.dumps(spec, sort_keys=True), META_HASH: spec_sha256(spec)}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        onnx.save_model(proto, str(tmp))
        diff = check_onnx(tmp, model, spec) if check else None
        if diff is not None and not diff < tolerance:
            raise ExportError(
                f"ONNX export of model {spec.get('name')!r}: onnxruntime differs from PyTorch by "
                f"{diff:.3g} (tolerance {tolerance:g}); the file was not written"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return diff


def onnx_spec(path: str | Path) -> dict[str, Any]:
    """The model spec recorded in an exported file's metadata."""
    import onnx

    from reid_pipeline.errors import DataError

    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:
        raise DataError(f"{path} cannot be read as an ONNX model ({exc})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if META_SPEC not in meta:
        raise DataError(
            f"{path} has no model spec in its metadata: export it with `reid-pipeline export`"
        )
    return json.loads(meta[META_SPEC])
