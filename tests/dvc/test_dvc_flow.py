"""The DVC flow for real, in a fresh clone of the project with tiny settings in conf/local:
``dvc repro`` -> nothing left to reproduce (not even after regenerating the raw data) ->
metrics and plots offline -> weights and data through a remote, byte-identical -> ``dvc exp run``
(a recipe value edited, a report parameter set with ``-S``) -> ``dvc exp show``.

To stay within the suite's budget the train foreach is cut to ``dimn`` (Market-1501 layout) and
``wrimnet`` (SYSU-MM01 layout): one architecture per raw dataset, so every stage kind and both
raw folders take part. A tiny run of each other architecture is in tests/kedro.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

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
RAW = ("data/01_raw/Market-1501-v15.09.15", "data/01_raw/SYSU-MM01")


def _tiny_local_conf(project: Path) -> None:
    """conf/local: the tiny synthetic datasets and seconds-long trainings. The architecture
    blocks (``dimn: {...}``) are overridden, not ``_dimn_recipes``: Kedro resolves each
    environment on its own, so a conf/local ``_dimn_recipes`` never reaches base's
    ``dimn: ${_dimn_recipes...}``."""
    local = project / "conf" / "local"
    tiny = {"preset": "tiny"}
    dump_yaml(
        {
            "datasets": {
                "single_modality": {"synthetic": tiny},
                "cross_modality": {"synthetic": tiny},
            }
        },
        local / "globals.yml",
    )
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
    params: dict = {}
    for arch in SUBSET:
        params |= tiny_params(arch)
    dump_yaml(params, local / "parameters.yml")


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
    assert "--params=dimn.fit.resume=false" in lock["stages"]["train@dimn"]["cmd"]
    # the recipe file and the globals keys are DVC params of the train stage
    params = lock["stages"]["train@dimn"]["params"]
    assert "_dimn_recipes" in params["conf/base/parameters_train_dimn.yml"]
    assert set(params["conf/base/globals.yml"]) == {"recipe", "datasets.single_modality"}

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
        for png in ("cmc_curve", "training_curves", "rank_list", "embedding_map"):
            name = f"workspace_data_08_reporting_{arch}_{png}.png"
            assert f'src="static/{name}"' in html
            assert (plots / "static" / name).stat().st_size > 1000
    assert "CMC, trained vs untrained" in html  # the vega plot of the CSVs is there too
    data = json.loads(dvc("plots", "show", "--json", cwd=project))
    assert any("cmc.csv" in json.dumps(v) for v in data.values())

    git("add", "dvc.lock", *[f"data/08_reporting/{a}/metrics.json" for a in SUBSET], cwd=project)
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

    # --- an experiment: a training parameter edited in its recipe (`-S` cannot edit the recipe
    # files while they hold `${globals:...}`) and one set with `-S`; only what they feed reruns
    recipe = project / "conf/base/parameters_train_dimn.yml"
    text = recipe.read_text()
    assert "optimizer: {name: adam, lr: 0.0007," in text
    recipe.write_text(text.replace("lr: 0.0007,", "lr: 0.002,", 1))
    out = dvc(
        "exp", "run", "-n", "dimn-lr",
        "-S", "conf/base/parameters_report.yml:report.order=[wrimnet,dimn]",
        cwd=project, timeout=600,
    )  # fmt: skip
    assert re.findall(r"Running stage '([^']+)'", out) == ["train@dimn", "report"]
    report = (project / "data/08_reporting/report.md").read_text()
    assert report.index("| wrimnet |") < report.index("| dimn |")

    rows = {row["name"]: row for row in _exp_rows(project)}
    assert {"main", "dimn-lr"} <= set(rows)
    for name, lr, order in (
        ("main", 0.0007, ["bot", "agw", "dimn", "pmm", "fienet", "wrimnet"]),
        ("dimn-lr", 0.002, ["wrimnet", "dimn"]),
    ):
        params = rows[name]["params"]
        assert params["conf/base/parameters_report.yml"]["report"]["order"] == order
        recipe_params = params["conf/base/parameters_train_dimn.yml"]["_dimn_recipes"]
        assert recipe_params["cpu_synthetic"]["optimizer"]["lr"] == lr
        assert "data/08_reporting/dimn/metrics.json" in rows[name]["metrics"]
    # the README's narrow view: one architecture's headline metrics beside the changed value
    table = dvc(
        "exp", "show", "--no-pager", "--drop", ".*",
        "--keep", r"Experiment|.*dimn/metrics.json:trained\.(R1|mAP|mINP)$|.*optimizer\.lr$",
        cwd=project,
    )  # fmt: skip
    assert "_dimn_recipes.cpu_synthetic.optimizer.lr" in table
    assert "data/08_reporting/dimn/metrics.json:trained.mAP" in table
    assert re.search(r"dimn-lr\]\s.*0\.002", table)
