"""The train pipeline's wiring in Kedro's idiom: nodes called as functions, and the whole
template run on an in-memory ``DataCatalog`` (no project copy, no session)."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from reid_pipeline.errors import ConfigError
from reid_pipeline.models import list_models
from reid_pipeline.pipelines.train import create_train_pipeline, nodes
from tests.kedro.conftest import TINY, TINY_DATASETS

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text())


def _block(arch: str) -> dict:
    block = yaml.safe_load((ROOT / "conf" / "base" / f"parameters_train_{arch}.yml").read_text())
    return block[arch]


def _datasets() -> dict:
    datasets = copy.deepcopy(BASE["datasets"])
    for slot, entry in TINY_DATASETS.items():
        datasets[slot].update(entry)
    return datasets


def test_check_parameters_returns_the_typed_experiment_and_its_dataset() -> None:
    experiment, dataset = nodes.check_parameters(
        _block("bot"), BASE["datasets"], BASE["protocols"], {}, None, arch="bot"
    )
    assert experiment.where == "bot.cpu_synthetic"
    assert experiment.recipe.sampler.identities == 8
    assert dataset == experiment.dataset.as_dict()
    assert dataset["name"] == "market1501"


def test_check_parameters_names_the_key() -> None:
    block = _block("bot")
    block["cpu_synthetic"]["sampler"] = {"batch_size": 30, "k": 4}
    with pytest.raises(ConfigError, match=r"bot\.cpu_synthetic\.sampler\.batch_size=30"):
        nodes.check_parameters(block, BASE["datasets"], BASE["protocols"], {}, None, arch="bot")


def _manifest(num_ids: int) -> pd.DataFrame:
    """A training manifest: ``num_ids`` identities, 2 cameras x 2 images each."""
    return pd.DataFrame(
        {
            "path": [
                f"{pid}_{cam}_{i}.jpg" for pid in range(num_ids) for cam in (1, 2) for i in range(2)
            ],
            "pid": [pid for pid in range(num_ids) for _ in range(4)],
            "camid": [cam for _ in range(num_ids) for cam in (1, 2) for _ in range(2)],
            "modality": 0,
        }
    )


def test_split_validation_holds_out_identities_from_the_manifest() -> None:
    experiment, _ = nodes.check_parameters(
        _block("bot"), BASE["datasets"], BASE["protocols"], {}, None, arch="bot"
    )
    frame = _manifest(20)
    fit, query, gallery = nodes.split_validation(frame, experiment)
    held = set(query["pid"]) | set(gallery["pid"])
    assert len(held) == experiment.recipe.validation.num_ids == 10
    assert sorted(set(fit["pid"])) == list(range(10))  # relabelled 0..N-1
    assert len(fit) + len(query) + len(gallery) == len(frame)


def test_the_hold_out_follows_the_validation_seed_not_the_training_seed() -> None:
    frame = _manifest(40)

    def held(seed: int, validation_seed: int) -> tuple[set[int], list[str]]:
        block = _block("bot")
        block["cpu_synthetic"]["seed"] = seed
        block["cpu_synthetic"]["validation"]["seed"] = validation_seed
        experiment, _ = nodes.check_parameters(
            block, BASE["datasets"], BASE["protocols"], {}, None, arch="bot"
        )
        _, query, gallery = nodes.split_validation(frame, experiment)
        return set(query["pid"]) | set(gallery["pid"]), list(query["path"])

    assert held(0, 0) == held(1, 0) == held(2, 0)  # same identities and queries for every seed
    assert held(0, 0)[0] != held(0, 1)[0]  # the validation seed draws them


@pytest.mark.slow
def test_the_template_runs_on_an_in_memory_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    arch = "bot"
    block = _block(arch)
    block["cpu_synthetic"] |= copy.deepcopy(TINY)
    catalog = DataCatalog()
    catalog["params:bot"] = block
    catalog["params:datasets"] = _datasets()
    catalog["params:protocols"] = BASE["protocols"]
    catalog["params:recipe_override"] = {}
    catalog["params:live_metrics_dir"] = str(tmp_path / "live" / "{arch}")
    catalog["bot.run_id"] = "run-under-test"
    pipeline = create_train_pipeline(arch)
    outputs = SequentialRunner().run(pipeline, catalog)
    metrics = outputs[f"{arch}.metrics"]
    metrics = metrics.load() if hasattr(metrics, "load") else metrics
    assert metrics["run_id"] == metrics["model"]["run_id"] == "run-under-test"
    assert len(metrics["model"]["weights_sha256"]) == 64
    # the training wrote its curve live, as DVCLive files
    from reid_pipeline.io.live import read_history

    history = read_history(tmp_path / "live" / arch)
    assert history["epoch"].tolist() == [1]
    assert history["loss"].iloc[0] > 0
    assert metrics["trained"]["protocol"] == "single_query"
    # every node of the template ran, none was left out of the wiring
    assert {n.name.split(".")[-1] for n in pipeline.nodes} >= {
        "train_model",
        "summarise",
        "plot_cmc",
    }


def test_one_train_pipeline_per_registered_model() -> None:
    from kedro.framework.project import configure_project

    from reid_pipeline.pipeline_registry import register_pipelines

    configure_project("reid_pipeline")
    pipelines = register_pipelines()
    for arch in list_models():
        names = {n.name for n in pipelines[f"train_{arch}"].nodes}
        assert f"{arch}.train_model" in names
        assert f"{arch}.check_parameters" in names
