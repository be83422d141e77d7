"""The training history in DVCLive's files: what a run writes reads back as the same table,
and the Kedro dataset over it saves and loads that table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from reid_pipeline.io import DVCLiveHistoryDataset
from reid_pipeline.io.live import column_name, metric_name, read_history, write_history

HISTORY = pd.DataFrame(
    {
        "epoch": [1, 2, 3],
        "loss": [3.0, 2.0, 1.5],
        "loss_ce": [2.0, 1.5, 1.0],
        "lr_backbone": [1e-4, 1e-3, 5e-4],
        "images_per_s": [40.0, 41.0, 39.5],
        "time_s": [10.0, 9.8, 10.1],
        "val_mAP": [math.nan, 0.25, 0.3],
    }
)


def test_names_map_both_ways() -> None:
    for column in HISTORY.columns.drop("epoch"):
        assert column_name(metric_name(column)) == column
    assert metric_name("val_mAP") == "val/mAP"
    assert metric_name("lr_backbone") == "lr/backbone"


def test_history_round_trips_through_dvclive_files(tmp_path: Path) -> None:
    write_history(tmp_path / "live", HISTORY)
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert summary["train"]["loss"] == 1.5  # dvc exp show: the latest epoch
    assert summary["step"] == 3
    assert (tmp_path / "live" / "plots" / "metrics" / "val" / "mAP.tsv").is_file()
    back = read_history(tmp_path / "live")
    pd.testing.assert_frame_equal(back[HISTORY.columns], HISTORY, check_dtype=False)


def test_the_kedro_dataset_saves_and_loads(tmp_path: Path) -> None:
    dataset = DVCLiveHistoryDataset(path=str(tmp_path / "d"))
    assert not dataset.exists()
    dataset.save(HISTORY)
    assert dataset.exists()
    assert dataset.load()["loss"].tolist() == [3.0, 2.0, 1.5]


def test_logging_in_a_git_repository_without_dvc_creates_no_dvc_repository(
    tmp_path: Path, monkeypatch
) -> None:
    """DVCLive alone runs `dvc init` in a git repository that has no .dvc folder (and fails in
    one without commits)."""
    import subprocess

    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "-C", str(tmp_path)]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    write_history(tmp_path / "live", HISTORY)  # no commit yet (DVCLive alone raised here)
    assert not (tmp_path / ".dvc").exists()
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    write_history(tmp_path / "live", HISTORY)  # DVCLive alone ran `dvc init` here
    assert not (tmp_path / ".dvc").exists()
    assert read_history(tmp_path / "live")["loss"].tolist() == HISTORY["loss"].tolist()
