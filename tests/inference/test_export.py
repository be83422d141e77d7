"""ONNX parity for all six architectures: each built with its CPU recipe's model options
(conf/base/parameters_train_<arch>.yml, ResNet-18, random weights, 4 classes) and exported;
onnxruntime must match PyTorch eager to 1e-4 on a mixed-modality batch of another size than the
one traced (``export_onnx`` checks it and refuses the file otherwise; checked again here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from reid_pipeline.inference import export_onnx, load_model_dir
from reid_pipeline.inference.onnx_export import onnx_spec

from .conftest import write_model_dir

ROOT = Path(__file__).parents[2]
ARCHS = ["bot", "agw", "dimn", "pmm", "fienet", "wrimnet"]


def _cpu_recipe(arch: str) -> tuple[dict, tuple[int, int]]:
    params = yaml.safe_load((ROOT / f"conf/base/parameters_train_{arch}.yml").read_text())
    recipes = next(iter(params.values()))
    recipe = next(v for k, v in recipes.items() if k.startswith("cpu") and isinstance(v, dict))
    options = {k: v for k, v in recipe["model"].items() if k != "name"}
    assert options["backbone"] == "resnet18"
    return options, (recipe["input"]["height"], recipe["input"]["width"])


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_matches_pytorch(arch: str, tmp_path: Path) -> None:
    options, size = _cpu_recipe(arch)
    model_dir = write_model_dir(tmp_path / arch, arch, options, size=size)
    model, spec = load_model_dir(model_dir)
    diff = export_onnx(model, spec, tmp_path / "m.onnx")
    assert diff is not None
    assert diff < 1e-4
    assert onnx_spec(tmp_path / "m.onnx") == spec
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    cross = bool(getattr(model, "cross_modality", False))
    assert names == (["images", "modality"] if cross else ["images"])
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 3, *size, generator=g)
    modality = torch.tensor([1, 0, 1])
    with torch.inference_mode():
        reference = model(x, modality=modality if cross else None).numpy()
    feed = {"images": x.numpy()}
    if cross:
        feed["modality"] = modality.numpy()
    got = session.run(None, feed)[0]
    assert got.shape == reference.shape
    assert np.abs(got - reference).max() < 1e-4


def test_fastreid_stem_pool_survives_the_model_dir_and_onnx(tmp_path: Path) -> None:
    """A model converted from fast-reid (``stem_pool: fastreid``) is rebuilt with fast-reid's
    pool from its folder and exports with it (ceil_mode max-pool in the ONNX graph)."""
    options, _size = _cpu_recipe("bot")
    model_dir = write_model_dir(tmp_path / "bot", "bot", {**options, "stem_pool": "fastreid"})
    model, spec = load_model_dir(model_dir)
    assert model.backbone.stem[3].ceil_mode
    assert model.backbone.stem[3].padding == 0
    diff = export_onnx(model, spec, tmp_path / "m.onnx")
    assert diff is not None
    assert diff < 1e-4
