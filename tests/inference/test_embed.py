from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from reid_pipeline.data.torch_dataset import read_image
from reid_pipeline.data.transforms import eval_transform
from reid_pipeline.errors import DataError, WeightsError
from reid_pipeline.inference import (
    embed_folder,
    list_images,
    load_model_dir,
    read_embeddings,
    read_spec,
    spec_sha256,
)

from .conftest import HEIGHT, WIDTH, write_images


def _reference(model_dir: Path, root: Path, names: list[str], flip: bool) -> np.ndarray:
    model, _ = load_model_dir(model_dir)
    transform = eval_transform(HEIGHT, WIDTH)
    x = torch.stack([transform(read_image(str(root / n))) for n in names])
    with torch.inference_mode():
        f = model(x)
        if flip:
            f = (f + model(x.flip(3))) / 2
    return f.numpy()


def test_embed_skips_a_corrupt_file_and_reads_png(model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "images"
    names = write_images(root, 5)
    (root / "cam 2" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "notes.txt").write_text("not an image")
    result = embed_folder(model_dir, root, tmp_path / "e.parquet", batch_size=2, progress=False)
    assert result.count == 5
    assert [p for p, _ in result.skipped] == ["cam 2/broken.jpg"]
    assert "broken.jpg" in result.skipped[0][1]
    paths, feats, meta = read_embeddings(tmp_path / "e.parquet")
    assert paths == names
    assert any(p.endswith(".png") for p in paths)
    assert feats.dtype == np.float32
    assert meta["spec_sha256"] == spec_sha256(read_spec(model_dir))
    assert meta["skipped"][0][0] == "cam 2/broken.jpg"
    np.testing.assert_allclose(feats, _reference(model_dir, root, names, False), atol=1e-5)
    assert not (tmp_path / "e.parquet.parts").exists()
    schema = pq.read_schema(tmp_path / "e.parquet")
    assert str(schema.field("embedding").type) == "list<element: float>"


def test_flip_averages_with_the_mirror(model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "images"
    names = write_images(root, 3)
    embed_folder(model_dir, root, tmp_path / "f.parquet", flip=True, progress=False)
    _, feats, meta = read_embeddings(tmp_path / "f.parquet")
    assert meta["flip"] is True
    np.testing.assert_allclose(feats, _reference(model_dir, root, names, True), atol=1e-5)
    assert not np.allclose(feats, _reference(model_dir, root, names, False), atol=1e-3)


def test_damaged_weights_and_spec_are_one_clear_error(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    spec = json.loads((model_dir / "model_spec.json").read_text())
    (bad / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    (bad / "model_spec.json").write_text(json.dumps({**spec, "weights_sha256": "0" * 64}))
    with pytest.raises(WeightsError, match=r"does not match the sha256 in model_spec\.json"):
        load_model_dir(bad)
    (bad / "model_spec.json").write_text("{not json")
    with pytest.raises(DataError, match=r"model_spec\.json is not valid JSON"):
        load_model_dir(bad)
    (bad / "model_spec.json").unlink()
    with pytest.raises(DataError, match=r"model_spec\.json is missing"):
        load_model_dir(bad)
    (bad / "model_spec.json").write_text(json.dumps({**spec, "weights_sha256": None}))
    (bad / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match=r"model\.safetensors cannot be read"):
        load_model_dir(bad)


def test_weights_of_another_shape_are_refused(model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    spec = json.loads((model_dir / "model_spec.json").read_text())
    (other / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    (other / "model_spec.json").write_text(
        json.dumps({**spec, "num_classes": 7, "weights_sha256": None})
    )
    with pytest.raises(WeightsError, match="does not fit the model"):
        load_model_dir(other)


def test_list_images_is_recursive_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ["b/z.BMP", "a.JPEG", "b/a.png", "c.txt", "d.jpg"]:
        (tmp_path / name).write_bytes(b"")
    assert list_images(tmp_path) == ["a.JPEG", "b/a.png", "b/z.BMP", "d.jpg"]
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "nope")


def test_onnxruntime_backend_matches_torch(model_dir: Path, tmp_path: Path) -> None:
    from reid_pipeline.inference import export_onnx

    model, spec = load_model_dir(model_dir)
    export_onnx(model, spec, tmp_path / "model.onnx")
    root = tmp_path / "images"
    write_images(root, 4)
    embed_folder(model_dir, root, tmp_path / "t.parquet", progress=False)
    embed_folder(
        tmp_path / "model.onnx",
        root,
        tmp_path / "o.parquet",
        backend="onnxruntime",
        progress=False,
    )
    paths_t, feats_t, meta_t = read_embeddings(tmp_path / "t.parquet")
    paths_o, feats_o, meta_o = read_embeddings(tmp_path / "o.parquet")
    assert paths_t == paths_o
    assert meta_t["spec_sha256"] == meta_o["spec_sha256"]
    assert meta_o["backend"] == "onnxruntime"
    np.testing.assert_allclose(feats_o, feats_t, atol=1e-4)
