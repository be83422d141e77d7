"""Every environment's configuration resolves and every architecture's parameters pass the
experiment checks (names, P x K, schedules) - a typo in a recipe fails here, not mid-run."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from reid_pipeline.experiment.config import ConfigError, parse_config, select_experiment
from reid_pipeline.train_template import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[2]
ENVS = sorted(
    p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name not in ("base", "local")
)


def _params(env: str | None) -> dict:
    loader = OmegaConfigLoader(
        str(ROOT / "conf"),
        base_env="base",
        default_run_env="local",
        env=env,
        merge_strategy={"parameters": "soft"},
    )
    return loader["parameters"]


def _experiment(params: dict, arch: str) -> dict:
    return select_experiment(
        params[arch],
        recipe=params["recipes"][arch],
        datasets=params["datasets"],
        protocols=params["protocols"],
        name=arch,
    )


def test_real_dataset_environments_exist() -> None:
    assert set(ENVS) >= {"market1501", "dukemtmc", "cuhk03", "msmt17", "sysu_mm01", "regdb", "llcm"}


@pytest.mark.parametrize("env", [None, *ENVS])
def test_every_architecture_parses_in_every_environment(env: str | None) -> None:
    params = _params(env)
    for arch in ARCHITECTURES:
        for recipe in params[arch]:  # every recipe, not only the selected one
            experiment = select_experiment(
                params[arch], recipe=recipe, datasets=params["datasets"], name=arch
            )
            config = parse_config(experiment, name=arch)
            assert config.model_name == arch
            assert config.checkpoint_dir == f"data/06_models/{arch}/checkpoints"


def test_base_uses_the_embedded_synthetic_data_and_cpu_recipes() -> None:
    params = _params(None)
    for arch in ARCHITECTURES:
        experiment = _experiment(params, arch)
        assert experiment["dataset"]["synthetic"], arch
        assert experiment["dataset"]["root"] == "data/01_raw/synthetic", arch
        assert experiment["model"]["backbone"] == "resnet18", arch
    assert _experiment(params, "dimn")["dataset"]["name"] == "market1501"
    wrimnet = _experiment(params, "wrimnet")
    assert wrimnet["dataset"]["name"] == "sysu_mm01"
    assert wrimnet["dataset"]["protocol"] == {"sampler": "official", "shots": [1, 10]}
    assert params["ingest"]["dataset_slot"] == "single_modality"


@pytest.mark.parametrize(
    ("env", "arch", "dataset"),
    [
        ("market1501", "dimn", "market1501"),
        ("sysu_mm01", "wrimnet", "sysu_mm01"),
        ("regdb", "agw", "regdb"),
        ("llcm", "fienet", "llcm"),
        ("cuhk03", "pmm", "cuhk03"),
    ],
)
def test_real_environments_select_the_paper_recipe_and_never_synthesise(
    env: str, arch: str, dataset: str
) -> None:
    params = _params(env)
    block = _experiment(params, arch)
    assert block["dataset"]["name"] == dataset
    assert block["dataset"]["root"] == "data/01_raw"
    assert block["dataset"]["synthetic"] is None
    assert block["model"]["backbone"] == "resnet50"
    assert block["model"]["pretrained"] == "imagenet"
    slot = params["ingest"]["dataset_slot"]
    assert params["datasets"][slot]["name"] == dataset


def test_regdb_and_llcm_get_only_their_own_protocol_options() -> None:
    params = _params("regdb")
    assert _experiment(params, "wrimnet")["dataset"]["protocol"] == {
        "directions": ["visible_to_thermal", "thermal_to_visible"]
    }
    params = _params("llcm")
    assert _experiment(params, "fienet")["dataset"]["protocol"] == {"variant": "standard"}


def test_an_unknown_recipe_or_slot_is_named() -> None:
    params = _params(None)
    with pytest.raises(ConfigError, match=r"recipes\.dimn: no recipe 'papr'"):
        select_experiment(params["dimn"], recipe="papr", datasets=params["datasets"], name="dimn")
    block = {"cpu_synthetic": {**params["dimn"]["cpu_synthetic"], "dataset_slot": "thermal"}}
    with pytest.raises(ConfigError, match=r"dimn\.cpu_synthetic\.dataset_slot: expected one of"):
        select_experiment(block, recipe="cpu_synthetic", datasets=params["datasets"], name="dimn")


def test_bad_parameters_are_named() -> None:
    params = {"dimn": _experiment(_params(None), "dimn")}
    bad = {**params["dimn"], "sampler": {"batch_size": 30, "k": 4}}
    with pytest.raises(ConfigError, match=r"dimn\.sampler\.batch_size=30 is not divisible by k=4"):
        parse_config(bad, name="dimn")
    bad = {**params["dimn"], "model": {**params["dimn"]["model"], "name": "resnet"}}
    with pytest.raises(ConfigError, match=r"dimn\.model\.name: unknown model 'resnet'"):
        parse_config(bad, name="dimn")
    bad = {**params["dimn"], "losses": [{"name": "arcface"}]}
    with pytest.raises(ConfigError, match=r"dimn\.losses\[0\]: unknown loss 'arcface'"):
        parse_config(bad, name="dimn")
    bad = {**params["dimn"], "augmentation": [{"name": "mixup"}]}
    with pytest.raises(ConfigError, match=r"dimn\.augmentation: .*mixup"):
        parse_config(bad, name="dimn")
    bad = {**params["dimn"], "model": {**params["dimn"]["model"], "dropout": 0.5}}
    with pytest.raises(ConfigError, match=r"dimn\.model: unknown key\(s\) \['dropout'\]"):
        parse_config(bad, name="dimn")
