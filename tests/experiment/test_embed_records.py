"""embed_records(): the recipe's evaluation settings and training memory format reach the
extraction."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from torch import nn

from reid_pipeline.data.records import Record
from reid_pipeline.experiment import run
from reid_pipeline.experiment.recipe import resolve_experiment

ROOT = Path(__file__).resolve().parents[2]
BLOCK = yaml.safe_load((ROOT / "conf" / "base" / "parameters_train_dimn.yml").read_text())["dimn"]
DATASETS = yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text())["datasets"]


@pytest.mark.parametrize(
    ("fit", "evaluation"),
    [
        ({"channels_last": True}, {"flip": True, "precision": "fp32"}),
        ({"channels_last": False}, {"flip": False, "precision": "bf16"}),
        ({"channels_last": "auto"}, {"flip": True, "precision": "auto"}),
    ],
)
def test_extraction_follows_the_recipe(
    monkeypatch: pytest.MonkeyPatch, fit: dict[str, Any], evaluation: dict[str, Any]
) -> None:
    block = copy.deepcopy(BLOCK)
    block["cpu_synthetic"]["fit"].update(fit)
    block["cpu_synthetic"]["evaluation"].update(evaluation)
    recipe = resolve_experiment("dimn", block, datasets=DATASETS).recipe
    seen: dict[str, Any] = {}

    def spy(model: nn.Module, loader: Any, **kwargs: Any) -> str:
        seen.update(kwargs, batch_size=loader.batch_size)
        return "features"

    monkeypatch.setattr(run, "extract_features", spy)
    records = [Record(f"img/{i}.jpg", i % 3, i % 2, 0) for i in range(6)]
    assert run.embed_records(nn.Identity(), records, recipe, progress=False) == "features"
    assert seen["channels_last"] == fit["channels_last"]
    assert seen["flip"] is evaluation["flip"]
    assert seen["precision"] == evaluation["precision"]
    assert seen["batch_size"] == recipe.loader.eval_batch_size
