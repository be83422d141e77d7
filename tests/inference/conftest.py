"""Tiny trained-model folders and image folders for the inference tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from reid_pipeline.io.digest import state_dict_sha256
from reid_pipeline.models import create_model

HEIGHT, WIDTH = 64, 32
BOT_OPTIONS = {"backbone": "resnet18", "pretrained": False, "last_stride": 1, "neck_feat": "after"}


def write_model_dir(
    folder: Path,
    name: str = "bot",
    options: dict | None = None,
    *,
    seed: int = 0,
    size: tuple[int, int] = (HEIGHT, WIDTH),
) -> Path:
    """A MODEL_DIR as a training run writes it (random weights, 4 classes)."""
    options = dict(BOT_OPTIONS if options is None else options)
    torch.manual_seed(seed)
    model = create_model(name, num_classes=4, **options)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    spec = {
        "name": name,
        "num_classes": 4,
        "kwargs": options,
        "cross_modality": bool(getattr(model, "cross_modality", False)),
        "feat_dim": int(model.feat_dim),
        "input": {"height": size[0], "width": size[1]},
        "params": 0,
        "seed": seed,
        "weights_sha256": state_dict_sha256(state),
    }
    (folder / "model_spec.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


def person(rng: np.random.Generator, size: tuple[int, int] = (80, 40)) -> np.ndarray:
    """A blocky random picture (H, W, 3) uint8: identities differ in their colour layout."""
    small = rng.integers(0, 256, (8, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size[1], size[0]), Image.NEAREST))


def write_images(folder: Path, n: int, *, seed: int = 0) -> list[str]:
    """``n`` images under ``folder`` (jpg and png, some in a subfolder, names with spaces)."""
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        sub = "cam 2" if i % 2 else ""
        name = f"{sub}/p{i:03d} x.{'png' if i % 3 else 'jpg'}".lstrip("/")
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(person(rng)).save(folder / name)
        names.append(name)
    return sorted(names)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("models") / "bot")
