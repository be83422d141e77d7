"""The `ingest` pipeline: the real-data environment reads a download placed under data/01_raw
(here a tiny synthetic tree in the real layout) and never falls back to synthetic data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reid_pipeline.data import generate_synthetic
from tests.kedro.conftest import TINY_DATASETS


def test_ingest_real_environment_reads_the_download(kedro_project: Path, run_pipeline) -> None:
    generate_synthetic(
        kedro_project / "data" / "01_raw", "market1501", preset="tiny", progress=False
    )
    run_pipeline("ingest", env="market1501")
    model_input = kedro_project / "data" / "05_model_input" / "ingest"
    train = pd.read_parquet(model_input / "train.parquet")
    query = pd.read_parquet(model_input / "query.parquet")
    assert list(train.columns) == ["path", "pid", "camid", "modality"]
    assert sorted(train["pid"].unique()) == list(range(train["pid"].nunique()))  # relabelled
    assert not query.empty
    assert train["path"].str.startswith("data/01_raw/Market-1501-v15.09.15/").all()
    stats = pd.read_csv(
        kedro_project / "data" / "08_reporting" / "ingest" / "dataset_statistics.csv"
    )
    assert list(stats["split"]) == ["train", "query", "gallery"]
    assert stats.loc[0, "images"] == len(train)


def test_ingest_real_environment_without_the_download_names_the_folder(
    kedro_project: Path, run_pipeline
) -> None:
    with pytest.raises(Exception, match=r"Market-1501-v15\.09\.15: dataset folder not found"):
        run_pipeline("ingest", env="market1501")
    assert not (kedro_project / "data" / "01_raw" / "Market-1501-v15.09.15").exists()


def test_ingest_default_generates_the_embedded_synthetic_data(
    kedro_project: Path, run_pipeline
) -> None:
    run_pipeline(
        "ingest",
        params={"datasets": TINY_DATASETS},
    )
    synthetic = kedro_project / "data" / "01_raw" / "synthetic"
    assert (synthetic / "Market-1501-v15.09.15" / "query").is_dir()
    assert (kedro_project / "data" / "05_model_input" / "ingest" / "gallery.parquet").is_file()
