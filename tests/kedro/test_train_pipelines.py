"""Each architecture's train pipeline end to end on the tiny synthetic data: raw folder ->
ingest -> train -> embeddings -> protocol -> metrics.json, plots and weights on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

from reid_pipeline.models import list_models
from tests.kedro.conftest import tiny_params

ARCHS = list_models()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_train_pipeline_end_to_end(arch: str, kedro_project: Path, run_pipeline) -> None:
    run_pipeline(f"train_{arch}", tiny_params(arch))
    report = kedro_project / "data" / "08_reporting" / arch
    metrics = json.loads((report / "metrics.json").read_text())
    cross = arch in ("fienet", "wrimnet")
    assert metrics["dataset"] == ("sysu_mm01" if cross else "market1501")
    assert metrics["synthetic"] is True
    for which in ("trained", "untrained"):
        head = metrics[which]
        assert 0.0 <= head["mAP"] <= 1.0
        assert 0.0 <= head["R1"] <= 1.0
    settings = metrics["protocols"]["settings"]
    expected = (
        [
            "all_search/single_shot",
            "all_search/multi_shot",
            "indoor_search/single_shot",
            "indoor_search/multi_shot",
        ]
        if cross
        else ["single_query"]
    )
    assert list(settings) == expected
    assert metrics["trained"]["protocol"] == expected[0]
    assert metrics["model"]["params"] > 1e6
    assert metrics["training"]["epochs"] == 1
    pngs = ["cmc_curve.png", "rank_list.png", "training_curves.png", "embedding_map.png"]
    pngs += ["activation_maps.png", "tsne.png"] + (["stripes.png"] if arch == "dimn" else [])
    for png in pngs:
        with Image.open(report / png) as img:
            assert img.size[0] > 200, png
    weights = load_file(kedro_project / "data" / "06_models" / arch / "model.safetensors")
    assert any(k.startswith("backbone.") for k in weights)
    spec = json.loads((kedro_project / "data" / "06_models" / arch / "model_spec.json").read_text())
    assert spec["name"] == arch
    assert spec["cross_modality"] is cross
    assert (kedro_project / "data" / "06_models" / arch / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"model": {"name": "resnet"}}, r"dimn\.cpu_synthetic\.model\.name: unknown model"),
        ({"losses": [{"name": "arcface"}]}, r"unknown loss 'arcface'"),
        ({"augmentation": [{"name": "mixup"}]}, r"dimn\.cpu_synthetic\.augmentation: .*mixup"),
        ({"sampler": {"batch_size": 30, "k": 4}}, r"batch_size=30 is not divisible by k=4"),
        ({"model": {"granularities": [2, 9]}}, r"does not run at input 96x48"),
    ],
)
def test_bad_parameters_stop_before_anything_is_read(
    override: dict, message: str, kedro_project: Path, run_pipeline
) -> None:
    params = tiny_params("dimn")
    recipe = params["dimn"]["cpu_synthetic"]
    for key, value in override.items():
        recipe[key] = {**recipe.get(key, {}), **value} if key == "model" else value
    with pytest.raises(Exception, match=message):
        run_pipeline("train_dimn", params)
    # nothing was ingested, generated or trained
    assert not (kedro_project / "data" / "01_raw" / "synthetic").exists()
    assert not (kedro_project / "data" / "05_model_input" / "dimn").exists()


def test_k_larger_than_every_identity_stops_before_training(
    kedro_project: Path, run_pipeline
) -> None:
    params = tiny_params("dimn", sampler={"p": 2, "k": 40})
    with pytest.raises(Exception, match=r"k=40 is larger than the number of images of every"):
        run_pipeline("train_dimn", params)
    assert (kedro_project / "data" / "05_model_input" / "dimn" / "train.parquet").is_file()
    assert not (kedro_project / "data" / "06_models" / "dimn" / "checkpoints").exists()
