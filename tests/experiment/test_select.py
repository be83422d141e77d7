"""train_from_records(): ``validation.select`` decides which weights a run returns."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml

from reid_pipeline.data.records import Record
from reid_pipeline.engine import FitResult
from reid_pipeline.experiment import run
from reid_pipeline.experiment.recipe import resolve_experiment

ROOT = Path(__file__).resolve().parents[2]
BLOCK = yaml.safe_load((ROOT / "conf" / "base" / "parameters_train_bot.yml").read_text())["bot"]
DATASETS = yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text())["datasets"]
FIT = [Record(f"img/{i}.jpg", i // 4, i % 2, 0) for i in range(8 * 4)]  # 8 ids x 4 images
VAL = [Record(f"val/{i}.jpg", 100 + i // 2, i % 2, 0) for i in range(4)]


@pytest.mark.parametrize(
    ("select", "epoch", "by", "value"),
    [("best", 2, "validation mAP", 2.0), ("last", 3, "last epoch", 3.0)],
)
def test_select_returns_the_best_or_the_last_weights(
    monkeypatch: pytest.MonkeyPatch, select: str, epoch: int, by: str, value: float
) -> None:
    block = copy.deepcopy(BLOCK)
    block["cpu_synthetic"]["fit"]["epochs"] = 3
    block["cpu_synthetic"]["validation"] |= {"select": select}
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
    block = copy.deepcopy(BLOCK)
    block["cpu_synthetic"]["validation"] |= {"select": "final"}
    with pytest.raises(Exception, match="select"):
        resolve_experiment("bot", block, datasets=DATASETS)
