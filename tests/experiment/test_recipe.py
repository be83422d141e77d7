"""The typed recipe checks: every bad parameter stops with one message naming the full key as
written in the parameters file, before anything is read or written."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from reid_pipeline.errors import ConfigError
from reid_pipeline.experiment.checks import check_experiment, check_recipe
from reid_pipeline.experiment.recipe import parse_recipe, resolve_experiment

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "conf" / "base" / "parameters_train_dimn.yml").read_text())["dimn"]
DATASETS = yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text())["datasets"]


def _set(recipe: dict, dotted: str, value: object) -> dict:
    recipe = copy.deepcopy(recipe)
    *parents, leaf = dotted.split(".")
    node = recipe
    for part in parents:
        node = node[part]
    node[leaf] = value
    return recipe


def _check(recipe: dict) -> None:
    where = "dimn.cpu_synthetic"
    check_recipe(where, parse_recipe(where, recipe))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("optimizer.lr", "abc", r"dimn\.cpu_synthetic\.optimizer\.lr: .*valid number.*'abc'"),
        ("optimizer.lr", -0.1, r"dimn\.cpu_synthetic\.optimizer\.lr: .*greater than 0"),
        ("optimizer.name", "sgdx", r"dimn\.cpu_synthetic\.optimizer\.name: .*'sgdx'"),
        ("fit.precision", "fp8", r"dimn\.cpu_synthetic\.fit\.precision: expected one of"),
        ("fit.grad_clip", -1.0, r"dimn\.cpu_synthetic\.fit\.grad_clip: .*greater than 0"),
        ("fit.device", "cuda:7", r"dimn\.cpu_synthetic\.fit\.device"),
        ("fit.epochs", 0, r"dimn\.cpu_synthetic\.fit\.epochs: .*greater than 0"),
        ("fit.epoch", 3, r"dimn\.cpu_synthetic\.fit\.epoch: Extra inputs"),
        ("validation.every", 0, r"dimn\.cpu_synthetic\.validation\.every: .*greater than 0"),
        ("model.pretrained", "weights/missing.pth", r"model\.pretrained='weights/missing\.pth'"),
        ("model.name", "resnet", r"dimn\.cpu_synthetic\.model\.name: unknown model 'resnet'"),
        ("model.dropout", 0.5, r"dimn\.cpu_synthetic\.model: unknown key\(s\) \['dropout'\]"),
        ("checkpoint_dir", "../../etc", r"checkpoint_dir='\.\./\.\./etc' leaves the project"),
        ("sampler", {"batch_size": 30, "k": 4}, r"sampler\.batch_size=30 is not divisible by k=4"),
        ("losses", [{"name": "arcface"}], r"dimn\.cpu_synthetic\.losses\[0\]: unknown loss"),
        ("augmentation", [{"name": "mixup"}], r"dimn\.cpu_synthetic\.augmentation: .*mixup"),
        ("scheduler.name", "cyclic", r"dimn\.cpu_synthetic\.scheduler\.name"),
        ("evaluation.metric", "hamming", r"dimn\.cpu_synthetic\.evaluation\.metric"),
    ],
)
def test_bad_parameters_name_their_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _check(_set(BASE["cpu_synthetic"], key, value))


def test_an_absolute_checkpoint_dir_is_allowed(tmp_path: Path) -> None:
    _check(_set(BASE["cpu_synthetic"], "checkpoint_dir", str(tmp_path / "ckpt")))


def test_the_shipped_recipe_passes_and_defaults_live_in_the_models() -> None:
    recipe = parse_recipe("dimn.cpu_synthetic", BASE["cpu_synthetic"])
    check_recipe("dimn.cpu_synthetic", recipe)
    trimmed = {k: v for k, v in BASE["cpu_synthetic"].items() if k not in ("loader", "evaluation")}
    defaults = parse_recipe("dimn.cpu_synthetic", trimmed)
    assert defaults.loader.num_workers == 0
    assert defaults.evaluation.metric == "cosine"
    assert defaults.sampler.identities == recipe.sampler.identities


def test_options_that_do_not_fit_the_input_fail_in_the_dry_run() -> None:
    block = {
        "recipe": "cpu_synthetic",
        "cpu_synthetic": _set(BASE["cpu_synthetic"], "model.granularities", [2, 9]),
    }
    experiment = resolve_experiment("dimn", block, datasets=DATASETS)
    with pytest.raises(
        ConfigError, match=r"dimn\.cpu_synthetic\.model does not run at input 96x48"
    ):
        check_experiment(experiment)
