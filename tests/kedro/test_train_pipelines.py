"""Each architecture's train pipeline end to end on the tiny synthetic data: raw folder ->
ingest -> train -> embeddings -> protocol -> metrics.json, plots and weights on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

from tests.kedro.conftest import tiny_params

ARCHS = ["bot", "agw", "dimn", "pmm", "fienet", "wrimnet"]


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
    for png in ("cmc_curve.png", "rank_list.png", "training_curves.png", "embedding_map.png"):
        with Image.open(report / png) as img:
            assert img.size[0] > 200, png
    weights = load_file(kedro_project / "data" / "06_models" / arch / "model.safetensors")
    assert any(k.startswith("backbone.") for k in weights)
    spec = json.loads((kedro_project / "data" / "06_models" / arch / "model_spec.json").read_text())
    assert spec["name"] == arch
    assert spec["cross_modality"] is cross
    assert (kedro_project / "data" / "06_models" / arch / "checkpoints" / "last.pt").is_file()
