"""experiment/run.py: the recipe's evaluation settings and training memory format reach the
extraction (``embed_records``); ``validation.select`` decides which weights a run returns
(``train_from_records``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from reid_pipeline.data.records import Record
from reid_pipeline.engine import FitResult
from reid_pipeline.errors import ConfigError
from reid_pipeline.experiment import run
from reid_pipeline.experiment.recipe import resolve_experiment

ROOT = Path(__file__).resolve().parents[2]
DATASETS = yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text())["datasets"]


def _block(arch: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """``<arch>``'s parameter block with keys of its cpu_synthetic recipe's sections replaced."""
    path = ROOT / "conf" / "base" / f"parameters_train_{arch}.yml"
    block = copy.deepcopy(yaml.safe_load(path.read_text())[arch])
    for section, values in sections.items():
        block["cpu_synthetic"][section] |= values
    return block


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
    block = _block("dimn", fit=fit, evaluation=evaluation)
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


FIT = [Record(f"img/{i}.jpg", i // 4, i % 2, 0) for i in range(8 * 4)]  # 8 ids x 4 images
VAL = [Record(f"val/{i}.jpg", 100 + i // 2, i % 2, 0) for i in range(4)]


@pytest.mark.parametrize(
    ("select", "epoch", "by", "value"),
    [("best", 2, "validation mAP", 2.0), ("last", 3, "last epoch", 3.0)],
)
def test_select_returns_the_best_or_the_last_weights(
    monkeypatch: pytest.MonkeyPatch, select: str, epoch: int, by: str, value: float
) -> None:
    block = _block("bot", fit={"epochs": 3}, validation={"select": select})
    experiment = resolve_experiment("bot", block, datasets=DATASETS)

    def fake_fit(model: torch.nn.Module, *args: Any, **kwargs: Any) -> FitResult:
        def weights(v: float) -> dict[str, torch.Tensor]:
            return {k: torch.full_like(t, v) for k, t in model.state_dict().items()}

        history = pd.DataFrame(
            {"epoch": [1, 2, 3], "time_s": [1.0] * 3, "images_per_s": [32.0] * 3}
        )
        return FitResult(
            history=history,
            state_dict=weights(3.0),
            best_epoch=2,
            best_metric=0.9,
            best_state_dict=weights(2.0),
            best_path=None,
            checkpoint_path=None,
            resumed_from=None,
        )

    monkeypatch.setattr(run, "fit", fake_fit)
    outcome = run.train_from_records(FIT, VAL, VAL, experiment, progress=False)
    assert all(bool((t == value).all()) for t in outcome.state_dict.values())
    assert outcome.summary["selected_epoch"] == epoch
    assert outcome.summary["selected_by"] == by
    assert outcome.summary["best_validation"] == 0.9  # reported either way


def test_select_is_checked() -> None:
    block = _block("bot", validation={"select": "final"})
    with pytest.raises(ConfigError, match=r"validation\.select"):
        resolve_experiment("bot", block, datasets=DATASETS)
