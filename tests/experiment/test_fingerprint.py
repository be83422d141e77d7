"""The checkpoint fingerprint: every setting that decides the trained weights changes its part,
``epochs`` (which a run may extend) and settings that do not touch the weights do not."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from reid_pipeline.data.records import Record
from reid_pipeline.experiment.recipe import resolve_experiment
from reid_pipeline.experiment.run import training_fingerprint

ROOT = Path(__file__).resolve().parents[2]
BLOCK = yaml.safe_load((ROOT / "conf" / "base" / "parameters_train_bot.yml").read_text())["bot"]
DATASETS = yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text())["datasets"]
RECORDS = [Record(f"img/{i}.jpg", i % 4, i % 2, 0) for i in range(16)]


def _fingerprint(change: dict | None = None, records=RECORDS, datasets=DATASETS) -> dict:
    block = copy.deepcopy(BLOCK)
    for dotted, value in (change or {}).items():
        *parents, leaf = dotted.split(".")
        node = block["cpu_synthetic"]
        for part in parents:
            node = node[part]
        node[leaf] = value
    experiment = resolve_experiment("bot", block, datasets=datasets)
    return training_fingerprint(experiment, records, num_classes=4)


@pytest.mark.parametrize(
    ("change", "part"),
    [
        ({"input.height": 128}, "input"),
        ({"model.last_stride": 2}, "model"),
        ({"optimizer.lr": 0.003}, "optimizer"),
        ({"sampler": {"p": 4, "k": 4}}, "sampler"),
        ({"scheduler.name": "constant"}, "scheduler"),
        ({"seed": 1}, "seed"),
        ({"fit.grad_clip": 5.0}, "precision"),
        ({"augmentation": [{"name": "resize"}]}, "augmentation"),
        ({"losses": [{"name": "ce", "weight": 1.0}]}, "losses"),
    ],
)
def test_each_setting_changes_its_part(change: dict, part: str) -> None:
    before, after = _fingerprint(), _fingerprint(change)
    assert {k for k in before if before[k] != after[k]} == {part}


def test_other_training_data_or_another_root_changes_the_fingerprint() -> None:
    before = _fingerprint()
    moved = [r._replace(pid=(r.pid + 1) % 4) for r in RECORDS]
    assert _fingerprint(records=moved)["train_data"] != before["train_data"]
    other = copy.deepcopy(DATASETS)
    other["single_modality"]["root"] = "data/01_raw/elsewhere"
    assert _fingerprint(datasets=other)["dataset"] != before["dataset"]


def test_epochs_progress_device_and_selection_leave_it_unchanged() -> None:
    before = _fingerprint()
    assert _fingerprint({"fit.epochs": 12, "fit.progress": False, "fit.device": "cpu"}) == before
    # which epoch a run returns does not change the training: the finished checkpoints serve
    assert _fingerprint({"validation.select": "last"}) == before
    assert _fingerprint({"validation.metric": "R1"}) != before  # best.pt holds another epoch


def test_the_feature_probe_leaves_the_model_untouched() -> None:
    from reid_pipeline.experiment.modelling import build_model, feature_dims

    model = build_model("bot", num_classes=3, options={"backbone": "resnet18"}, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert feature_dims(model, 64, 32) == [512]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
