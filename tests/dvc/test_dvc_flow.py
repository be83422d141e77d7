"""The DVC flow for real, in a fresh clone of the project with tiny settings in conf/local:
``dvc repro`` -> nothing left to reproduce (not even after regenerating the raw data) ->
metrics and plots offline -> weights and data through a remote, byte-identical -> ``dvc exp run``
(a recipe value and a report parameter set with ``-S``) -> ``dvc exp show`` -> which stages
a recipe, the recipe choice or ``recipe_override`` makes stale.

To stay within the suite's budget the train foreach is cut to ``dimn`` (Market-1501 layout) and
``wrimnet`` (SYSU-MM01 layout): one architecture per raw dataset, so every stage kind and both
raw folders take part. A tiny run of each other architecture is in tests/kedro.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from dvc.utils.hydra import apply_overrides

from tests.dvc.conftest import (
    assert_same_bytes,
    clone_project,
    dump_yaml,
    dvc,
    git,
    load_yaml,
    restrict_to,
)
from tests.kedro.conftest import tiny_params

SUBSET = ("dimn", "wrimnet")
#: per architecture, the metrics files kept in git (.gitignore) for `dvc exp show`
METRICS_FILES = ("metrics.json", "dvclive/metrics.json")
RAW = ("data/01_raw/synthetic/Market-1501-v15.09.15", "data/01_raw/synthetic/SYSU-MM01")


def _tiny_local_conf(project: Path) -> None:
    """conf/local (not tracked by DVC): the tiny synthetic datasets and seconds-long trainings,
    as the README advises - single keys of the recipe that runs (``dimn.cpu_synthetic...``) and
    of ``datasets``, soft-merged over conf/base."""
    local = project / "conf" / "local"
    dump_yaml(
        {
            "generate_synthetic": {
                "datasets": [
                    {"layout": "market1501", "preset": "tiny", "seed": 0, "progress": False},
                    {"layout": "sysu_mm01", "preset": "tiny", "seed": 0, "progress": False},
                ]
            }
        },
        local / "parameters_generate_synthetic.yml",
    )
    params: dict[str, Any] = {}
    for arch in SUBSET:
        params |= tiny_params(arch)  # {arch: {"cpu_synthetic": {...}}, "datasets": {...}}
    dump_yaml(params, local / "parameters.yml")


def _stale(project: Path) -> set[str]:
    """The stages ``dvc status`` reports changed."""
    return set(json.loads(dvc("status", "--json", cwd=project)))


def _exp_rows(project: Path) -> list[dict]:
    """``dvc exp show --json`` flattened: one dict per commit / experiment with its name,
    params and metrics."""
    rows = []
    for entry in json.loads(dvc("exp", "show", "--json", "--no-pager", cwd=project)):
        for item in [entry, *[e for exp in entry.get("experiments") or [] for e in exp["revs"]]]:
            data = item.get("data") or {}
            rows.append(
                {
                    "name": item.get("name") or item.get("rev"),
                    "params": {f: v.get("data", {}) for f, v in (data.get("params") or {}).items()},
                    "metrics": {
                        f: v.get("data", {}) for f, v in (data.get("metrics") or {}).items()
                    },
                }
            )
    return rows


@pytest.mark.slow
def test_dvc_repro_exp_metrics_plots_remote(tmp_path: Path) -> None:
    project = clone_project(tmp_path / "clone")
    restrict_to(project / "dvc.yaml", SUBSET)
    git("commit", "-q", "-am", "train stages: the test's subset", cwd=project)
    _tiny_local_conf(project)

    # --- a fresh clone reproduces the experiment, in the documented order
    out = dvc("repro", cwd=project, timeout=600)
    assert "dot notation" not in out  # Kedro's warning about a dotted, un-namespaced name
    ran = re.findall(r"Running stage '([^']+)'", out)
    assert ran[0] == "generate"
    assert set(ran) == {"generate", "ingest", "train@dimn", "train@wrimnet", "report"}
    assert ran[-1] == "report"
    for folder in RAW:
        assert any((project / folder).rglob("*.jpg")) or any((project / folder).rglob("*.bmp"))
    for arch in SUBSET:
        assert (project / f"data/06_models/{arch}/model.safetensors").stat().st_size > 1e6
        metrics = json.loads((project / f"data/08_reporting/{arch}/metrics.json").read_text())
        assert metrics["architecture"] == arch
    report = (project / "data/08_reporting/report.md").read_text()
    assert "| dimn | market1501 |" in report
    assert "| wrimnet | sysu_mm01 |" in report
    lock = load_yaml(project / "dvc.lock")
    assert set(lock["stages"]) == {"generate", "ingest", "train@dimn", "train@wrimnet", "report"}
    assert "--params=dimn.$recipe.fit.resume=false" in lock["stages"]["train@dimn"]["cmd"]
    # the architecture's whole block and the shared keys it reads are DVC params of its stage
    for arch in SUBSET:
        params = lock["stages"][f"train@{arch}"]["params"]
        assert set(params[f"conf/base/parameters_train_{arch}.yml"]) == {arch}
        assert set(params["conf/base/parameters.yml"]) == {
            "recipe_override",
            "datasets",
            "protocols",
            "live_metrics_dir",
        }
        live = project / f"data/08_reporting/{arch}/dvclive"
        assert json.loads((live / "metrics.json").read_text())["train"]["loss"] > 0
        assert (live / "plots/metrics/train/loss.tsv").is_file()

    # --- a second repro has nothing to do (no output feeds back into a dependency)
    again = dvc("repro", cwd=project)
    assert "Running stage" not in again
    assert "Data and pipelines are up to date." in again
    assert "Data and pipelines are up to date." in dvc("status", cwd=project)
    # regenerating the raw data gives the same bytes: nothing downstream becomes stale
    dvc("repro", "--force", "--single-item", "generate", cwd=project)
    assert "Data and pipelines are up to date." in dvc("status", cwd=project)

    # --- metrics and plots, offline
    shown = dvc("metrics", "show", "--json", cwd=project)
    metrics_json = json.loads(shown)
    workspace = (
        metrics_json[""]["data"] if "" in metrics_json else metrics_json["workspace"]["data"]
    )
    dimn_metrics = workspace["data/08_reporting/dimn/metrics.json"]["data"]
    on_disk = json.loads((project / "data/08_reporting/dimn/metrics.json").read_text())
    assert dimn_metrics["trained"]["mAP"] == pytest.approx(on_disk["trained"]["mAP"])
    table = dvc("metrics", "show", cwd=project)
    assert "data/08_reporting/wrimnet/metrics.json" in table
    assert "trained.mAP" in table
    plots = tmp_path / "plots"
    dvc("plots", "show", "-o", str(plots), cwd=project)
    html = (plots / "index.html").read_text()
    for arch in SUBSET:
        for png in (
            "cmc_curve", "training_curves", "rank_list", "embedding_map", "activation_maps", "tsne"
        ):  # fmt: skip
            name = f"workspace_data_08_reporting_{arch}_{png}.png"
            assert f'src="static/{name}"' in html
            assert (plots / "static" / name).stat().st_size > 1000
    assert "CMC of the trained model" in html  # the vega plot of the CSVs is there too
    data = json.loads(dvc("plots", "show", "--json", cwd=project))
    assert any("cmc.csv" in json.dumps(v) for v in data.values())

    metrics_files = [f"data/08_reporting/{a}/{m}" for a in SUBSET for m in METRICS_FILES]
    git("add", "dvc.lock", *metrics_files, cwd=project)
    git("commit", "-q", "-m", "synthetic experiment, tiny", cwd=project)

    # --- weights and data through a remote: push, remove, pull, identical bytes
    remote = tmp_path / "remote"
    dvc("remote", "add", "-d", "local", str(remote), cwd=project)
    keep = tmp_path / "before"
    tracked = [Path(RAW[0]), *[Path(f"data/06_models/{a}/model.safetensors") for a in SUBSET]]
    for rel in tracked:
        copy = shutil.copytree if (project / rel).is_dir() else shutil.copy2
        (keep / rel).parent.mkdir(parents=True, exist_ok=True)
        copy(project / rel, keep / rel)
    pushed = dvc("push", cwd=project)
    assert re.search(r"\d+ files? pushed", pushed)
    for rel in tracked:
        (shutil.rmtree if (project / rel).is_dir() else Path.unlink)(project / rel)
    shutil.rmtree(project / ".dvc" / "cache")
    dvc("pull", cwd=project)
    compared = sum(assert_same_bytes(keep / rel, project / rel) for rel in tracked)
    assert compared > 10
    assert "Data and pipelines are up to date." in dvc("status", cwd=project)

    # --- an experiment: a recipe value and a report parameter, both with `-S`; only what they
    # feed reruns (wrimnet: the quicker of the two trainings)
    recipe = project / "conf/base/parameters_train_wrimnet.yml"
    base_lr = load_yaml(recipe)["wrimnet"]["cpu_synthetic"]["optimizer"]["lr"]
    base_order = load_yaml(project / "conf/base/parameters_report.yml")["report"]["order"]
    assert base_lr != 0.002
    out = dvc(
        "exp", "run", "-n", "wrimnet-lr",
        "-S", "conf/base/parameters_train_wrimnet.yml:wrimnet.cpu_synthetic.optimizer.lr=0.002",
        "-S", "conf/base/parameters_report.yml:report.order=[wrimnet,dimn]",
        cwd=project, timeout=600,
    )  # fmt: skip
    assert re.findall(r"Running stage '([^']+)'", out) == ["train@wrimnet", "report"]
    assert load_yaml(recipe)["wrimnet"]["cpu_synthetic"]["optimizer"]["lr"] == 0.002
    report = (project / "data/08_reporting/report.md").read_text()
    assert report.index("| wrimnet |") < report.index("| dimn |")

    rows = {row["name"]: row for row in _exp_rows(project)}
    assert {"main", "wrimnet-lr"} <= set(rows)
    for name, lr, order in (
        ("main", base_lr, base_order),
        ("wrimnet-lr", 0.002, ["wrimnet", "dimn"]),
    ):
        params = rows[name]["params"]
        assert params["conf/base/parameters_report.yml"]["report"]["order"] == order
        recipe_params = params["conf/base/parameters_train_wrimnet.yml"]["wrimnet"]
        assert recipe_params["cpu_synthetic"]["optimizer"]["lr"] == lr
        assert "data/08_reporting/wrimnet/metrics.json" in rows[name]["metrics"]
        assert "data/08_reporting/wrimnet/dvclive/metrics.json" in rows[name]["metrics"]
    # the README's narrow view: one architecture's headline metrics beside the changed value
    keep = (
        r"Experiment|.*{0}/metrics.json:trained\.(R1|mAP|mINP)$"
        r"|.*{0}\.cpu_synthetic\.optimizer\.lr$"
    )
    table = dvc(
        "exp", "show", "--no-pager", "--drop", ".*", "--keep", keep.format("wrimnet"),
        cwd=project,
    )  # fmt: skip
    assert "wrimnet.cpu_synthetic.optimizer.lr" in table
    assert "data/08_reporting/wrimnet/metrics.json:trained.mAP" in table
    assert "dimn" not in table.replace("wrimnet", "")  # the other architecture is dropped
    assert re.search(r"wrimnet-lr\]\s.*0\.002", table)

    # --- what a change makes stale (DVC's own `-S` code edits the files; nothing is run): the
    # experiment's results are the workspace now. A stage tracks its architecture's whole block,
    # so a recipe that does not run reruns it too (conservative); the recipe choice stales that
    # one train stage; `recipe_override` every train stage
    assert _stale(project) == set()
    dimn_recipe = project / "conf/base/parameters_train_dimn.yml"
    apply_overrides(dimn_recipe, ["dimn.paper.seed=5"])
    assert load_yaml(dimn_recipe)["dimn"]["paper"]["seed"] == 5
    assert _stale(project) == {"train@dimn"}
    git("checkout", "--", "conf/base/parameters_train_dimn.yml", cwd=project)
    assert _stale(project) == set()
    apply_overrides(dimn_recipe, ["dimn.recipe=paper"])
    assert _stale(project) == {"train@dimn"}
    git("checkout", "--", "conf/base/parameters_train_dimn.yml", cwd=project)
    apply_overrides(
        project / "conf/base/parameters.yml", ["+recipe_override.single_modality=paper"]
    )
    assert _stale(project) == {"train@dimn", "train@wrimnet"}
