"""Every environment's configuration resolves and every architecture's recipes pass the typed
checks (names, P x K, schedules) - a typo in a recipe fails here, not mid-run."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from reid_pipeline.errors import ConfigError
from reid_pipeline.experiment.checks import check_recipe
from reid_pipeline.experiment.recipe import (
    parse_recipe,
    recipe_names,
    resolve_experiment,
    selected_recipe,
)
from reid_pipeline.models import list_models

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


def _experiment(params: dict, arch: str):
    return resolve_experiment(
        arch,
        params[arch],
        datasets=params["datasets"],
        protocols=params["protocols"],
        recipe_override=params["recipe_override"],
    )


def test_real_dataset_environments_exist() -> None:
    assert set(ENVS) >= {"market1501", "dukemtmc", "cuhk03", "msmt17", "sysu_mm01", "regdb", "llcm"}


def test_every_model_has_a_parameters_file_with_a_default_recipe() -> None:
    params = _params(None)
    for arch in list_models():
        assert (ROOT / "conf" / "base" / f"parameters_train_{arch}.yml").is_file(), arch
        assert params[arch]["recipe"] in recipe_names(params[arch]), arch


@pytest.mark.parametrize("env", [None, *ENVS])
def test_every_recipe_passes_the_checks_in_every_environment(env: str | None) -> None:
    params = _params(env)
    for arch in list_models():
        for name in recipe_names(params[arch]):  # every recipe, not only the selected one
            recipe = parse_recipe(f"{arch}.{name}", params[arch][name])
            check_recipe(f"{arch}.{name}", recipe)
            assert recipe.model.name == arch
            assert recipe.checkpoint_dir == f"data/06_models/{arch}/checkpoints"
        _experiment(params, arch)  # the selected recipe resolves against this environment


def test_base_uses_the_embedded_synthetic_data_and_cpu_recipes() -> None:
    params = _params(None)
    for arch in list_models():
        experiment = _experiment(params, arch)
        assert experiment.recipe_name == "cpu_synthetic", arch
        assert experiment.dataset.synthetic, arch
        assert experiment.dataset.root == "data/01_raw/synthetic", arch
        assert experiment.recipe.model.options()["backbone"] == "resnet18", arch
    assert _experiment(params, "dimn").dataset.name == "market1501"
    wrimnet = _experiment(params, "wrimnet")
    assert wrimnet.dataset.name == "sysu_mm01"
    assert wrimnet.protocol == {"sampler": "official", "shots": [1, 10]}
    assert params["ingest"]["dataset_slot"] == "single_modality"


@pytest.mark.parametrize(
    ("env", "arch", "dataset", "recipe"),
    [
        ("market1501", "dimn", "market1501", "paper"),
        ("sysu_mm01", "wrimnet", "sysu_mm01", "paper"),
        ("regdb", "agw", "regdb", "paper_vi"),
        ("llcm", "fienet", "llcm", "paper"),
        ("cuhk03", "pmm", "cuhk03", "paper"),
    ],
)
def test_real_environments_select_the_paper_recipe_and_never_synthesise(
    env: str, arch: str, dataset: str, recipe: str
) -> None:
    params = _params(env)
    experiment = _experiment(params, arch)
    assert experiment.recipe_name == recipe
    assert experiment.dataset.name == dataset
    assert experiment.dataset.root == "data/01_raw"
    assert experiment.dataset.synthetic is None
    options = experiment.recipe.model.options()
    assert options["backbone"] == "resnet50"
    assert options["pretrained"] == "imagenet"
    slot = params["ingest"]["dataset_slot"]
    assert params["datasets"][slot]["name"] == dataset


def test_a_slot_override_reaches_every_architecture_of_that_slot_only() -> None:
    block = {"recipe": "cpu", "cpu": {"dataset_slot": "single_modality"}, "paper": {}}
    assert selected_recipe("new", block, {"single_modality": "paper"}) == "paper"
    assert selected_recipe("new", block, {"cross_modality": "paper"}) == "cpu"
    assert selected_recipe("new", block, {"new": "cpu", "single_modality": "paper"}) == "cpu"
    with pytest.raises(ConfigError, match=r"recipe_override\.single_modality='gpu': new has no"):
        selected_recipe("new", block, {"single_modality": "gpu"})


def test_regdb_and_llcm_get_only_their_own_protocol_options() -> None:
    params = _params("regdb")
    assert _experiment(params, "wrimnet").protocol == {
        "directions": ["visible_to_thermal", "thermal_to_visible"]
    }
    params = _params("llcm")
    assert _experiment(params, "fienet").protocol == {"variant": "standard"}


def test_an_unknown_recipe_or_slot_is_named() -> None:
    params = _params(None)
    with pytest.raises(ConfigError, match=r"dimn\.recipe: no recipe 'papr'"):
        resolve_experiment("dimn", params["dimn"], datasets=params["datasets"], recipe="papr")
    block = {
        "recipe": "cpu_synthetic",
        "cpu_synthetic": {**params["dimn"]["cpu_synthetic"], "dataset_slot": "thermal"},
    }
    with pytest.raises(ConfigError, match=r"dimn\.cpu_synthetic\.dataset_slot: expected one of"):
        resolve_experiment("dimn", block, datasets=params["datasets"])
    with pytest.raises(ConfigError, match=r"dimn\.recipe: name the recipe"):
        resolve_experiment("dimn", {"cpu_synthetic": {}}, datasets=params["datasets"])
