"""The ``report`` pipeline (every architecture side by side), the mean over RegDB trials and
``scripts/regdb_all_trials.sh``."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from reid_pipeline.data.records import Record
from reid_pipeline.evaluation import evaluate_protocol
from reid_pipeline.experiment.summary import headline
from reid_pipeline.pipelines.report.nodes import collect_metrics, render_chart, render_table
from reid_pipeline.pipelines.report.trials import (
    TrialsError,
    format_summary,
    main,
    summarise_trials,
)
from tests.kedro.conftest import ROOT, tiny_params

# ------------------------------------------------------------------------------ helpers


def _regdb_protocol(trial: int, seed: int) -> dict[str, Any]:
    """A real RegDB protocol result (both directions) on random features: 4 ids, 2 images each
    per modality, query = thermal, gallery = visible, as the regdb loader returns them."""
    rng = np.random.default_rng(seed)
    query = [Record(f"t{p}_{i}.bmp", p, 2, 1) for p in range(4) for i in range(2)]
    gallery = [Record(f"v{p}_{i}.bmp", p, 1, 0) for p in range(4) for i in range(2)]
    result = evaluate_protocol(
        "regdb",
        rng.normal(size=(8, 16)).astype(np.float32),
        rng.normal(size=(8, 16)).astype(np.float32),
        query,
        gallery,
        {"trial": trial},
        directions=["thermal_to_visible", "visible_to_thermal"],
    )
    return result.to_dict()


def _metrics(arch: str, protocols: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A metrics.json as the train template's ``summarise`` writes it."""
    return {
        "architecture": arch,
        "dataset": protocols["dataset"],
        "synthetic": False,
        "trained": headline(protocols),
        "untrained": headline(protocols),
        "protocols": protocols,
        "model": {"params": 23_500_000, "feat_dim": 2048, "num_classes": 206},
        "training": {"epochs": 2, "seconds": 90.0, "images_per_s": 12.5},
        **extra,
    }


def _row_metrics(arch: str, r1: float, map_: float, **training: Any) -> dict[str, Any]:
    return {
        "architecture": arch,
        "dataset": "market1501",
        "trained": {"protocol": "single_query", "R1": r1, "mAP": map_, "mINP": map_ / 2},
        "untrained": {"protocol": "single_query", "R1": r1 / 4, "mAP": map_ / 4, "mINP": 0.01},
        "model": {"params": 11_200_000},
        "training": {"seconds": 120.0, "images_per_s": 30.0, **training},
    }


# ------------------------------------------------------------------------------ report nodes


def test_collect_metrics_rows_units_and_order() -> None:
    parts = {
        "dimn/": lambda: _row_metrics("dimn", 0.5, 0.25),
        "bot/": lambda: _row_metrics("bot", 0.75, 0.5, seconds=60.0),
        "zeta/": lambda: _row_metrics("zeta", 0.1, 0.1),
    }
    table = collect_metrics(parts, order=["bot", "dimn"])
    assert table["architecture"].tolist() == ["bot", "dimn", "zeta"]  # order, then the rest
    bot = table.iloc[0]
    assert bot["R1"] == pytest.approx(75.0)
    assert bot["mAP"] == pytest.approx(50.0)
    assert bot["mINP"] == pytest.approx(25.0)
    assert bot["untrained_R1"] == pytest.approx(18.75)
    assert bot["params_M"] == pytest.approx(11.2)
    assert bot["train_seconds"] == pytest.approx(60.0)
    assert bot["images_per_s"] == pytest.approx(30.0)


def test_collect_metrics_missing_optional_blocks_are_nan() -> None:
    m = _row_metrics("pmm", 0.5, 0.5)
    del m["untrained"], m["model"], m["training"]
    row = collect_metrics({"pmm/": lambda: m}, order=[]).iloc[0]
    assert np.isnan(row["untrained_R1"])
    assert np.isnan(row["params_M"])
    assert np.isnan(row["train_seconds"])
    assert "| pmm | market1501 | single_query | 50.0 | 50.0 | 25.0 | - | - | - | - | - |" in (
        render_table(collect_metrics({"pmm/": lambda: m}, order=[]))
    )


def test_collect_metrics_errors_name_the_file() -> None:
    with pytest.raises(
        ValueError, match=re.escape("no data/08_reporting/<architecture>/metrics.json")
    ):
        collect_metrics({}, order=[])
    broken = _row_metrics("agw", 0.5, 0.5)
    del broken["trained"]["mAP"]
    with pytest.raises(
        ValueError, match=r"agw/metrics.json: 'trained' has no number for \['mAP'\]"
    ):
        collect_metrics({"agw/": lambda: broken}, order=[])
    with pytest.raises(ValueError, match=re.escape("wrimnet/metrics.json: expected a JSON object")):
        collect_metrics({"wrimnet/": lambda: [1, 2]}, order=[])


def test_render_table_and_chart() -> None:
    table = collect_metrics(
        {
            "bot/": lambda: _row_metrics("bot", 0.75, 0.5),
            "dimn/": lambda: _row_metrics("dimn", 0.5, 0.25),
        },
        order=["bot", "dimn"],
    )
    text = render_table(table)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| architecture"))
    for column in ("R1 (%)", "mAP (%)", "mINP (%)", "params (M)", "training time (s)", "images/s"):
        assert column in header
    row = "| bot | market1501 | single_query | 75.0 | 50.0 | 25.0 | 18.8 | 12.5 | 11.2 | - |"
    assert f"{row} 120.0 | 30.0 |" in lines
    assert "market1501: images seen not recorded for bot, dimn (an older run)." in lines
    fig = render_chart(table)
    assert isinstance(fig, Figure)
    bars, cost = fig.axes
    assert len(bars.patches) == 5 * 2  # five series x two architectures
    assert [t.get_text().split("\n")[0] for t in cost.texts] == ["bot", "dimn"]


def test_report_says_whether_budgets_are_equal() -> None:
    def table(seen: dict[str, int]) -> list[str]:
        parts = {
            f"{a}/": (lambda a=a, n=n: _row_metrics(a, 0.5, 0.25, images_seen=n))
            for a, n in seen.items()
        }
        return render_table(collect_metrics(parts, order=list(seen))).splitlines()

    equal = table({"bot": 16_128, "dimn": 16_128})
    assert "market1501: equal budget, every architecture (bot, dimn) saw 16,128 training " in (
        " ".join(equal) + " "
    )
    assert any(line.startswith("| bot |") and "| 16,128 |" in line for line in equal)
    unequal = " ".join(table({"bot": 6_912, "dimn": 4_608}))
    assert "**unequal budgets** (images seen: bot 6,912, dimn 4,608)" in unequal


# ------------------------------------------------------------------------------ trials


def test_summarise_trials_means_both_directions() -> None:
    runs = [_metrics("wrimnet", _regdb_protocol(t, seed=t)) for t in (1, 2, 3)]
    summary = summarise_trials(runs)
    assert list(summary.index) == ["thermal_to_visible", "visible_to_thermal"]
    for setting in summary.index:
        for key in ("R1", "R10", "mAP", "mINP"):
            values = [r["protocols"]["settings"][setting]["mean"][key] for r in runs]
            assert summary.loc[setting, key] == pytest.approx(np.mean(values))
            assert summary.loc[setting, f"{key}_std"] == pytest.approx(np.std(values))
        assert summary.loc[setting, "trials"] == 3
    text = format_summary(summary, title="t")
    assert "thermal_to_visible" in text
    assert f"{100 * summary.loc['visible_to_thermal', 'mAP']:6.2f}" in text


def test_summarise_trials_refuses_mixed_or_repeated_trials() -> None:
    one = _metrics("wrimnet", _regdb_protocol(1, seed=0))
    with pytest.raises(
        TrialsError, match=re.escape("b.json: trial 1 was already evaluated in a.json")
    ):
        summarise_trials(
            [one, _metrics("wrimnet", _regdb_protocol(1, seed=1))], sources=["a.json", "b.json"]
        )
    with pytest.raises(TrialsError, match="dataset/architecture"):
        summarise_trials([one, _metrics("dimn", _regdb_protocol(2, seed=1))])
    other = _metrics("wrimnet", _regdb_protocol(2, seed=1))
    del other["protocols"]["settings"]["visible_to_thermal"]
    with pytest.raises(TrialsError, match=r"settings \['thermal_to_visible'\] differ"):
        summarise_trials([one, other])
    with pytest.raises(TrialsError, match=re.escape("no 'protocols.settings' block")):
        summarise_trials([{"architecture": "x"}], sources=["x.json"])
    with pytest.raises(TrialsError, match="no trial files"):
        summarise_trials([])


def test_trials_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = []
    for t in (1, 2):
        path = tmp_path / f"bot_trial_{t}.json"
        path.write_text(json.dumps(_metrics("bot", _regdb_protocol(t, seed=t))))
        files.append(str(path))
    assert main([*files, "--output", str(tmp_path / "mean.json")]) == 0
    printed = capsys.readouterr().out
    assert "bot on regdb: mean ± std over 2 trials" in printed
    saved = json.loads((tmp_path / "mean.json").read_text())
    assert [s["setting"] for s in saved["settings"]] == ["thermal_to_visible", "visible_to_thermal"]
    assert main([*files, "--expect", "10"]) == 2
    assert "expected 10 trial files, got 2" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such trial file" in capsys.readouterr().err


# ------------------------------------------------------------------------------ regdb script

_FAKE_KEDRO = """#!{python}
# stands in for `kedro run`: records its arguments and writes the metrics.json of the trial
import json, pathlib, re, shutil, sys
args = sys.argv[1:]
with open("kedro_calls.jsonl", "a") as fh:
    fh.write(json.dumps(args) + "\\n")
params = next(a for a in args if a.startswith("--params="))
arch = re.search(r"--pipeline=train_(\\w+)", " ".join(args)).group(1)
trial = int(re.search(r"options\\.trial=(\\d+)", params).group(1))
out = pathlib.Path("data/08_reporting") / arch
out.mkdir(parents=True, exist_ok=True)
shutil.copy(f"fixtures/trial_{{trial}}.json", out / "metrics.json")
"""


def test_regdb_all_trials_script(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "regdb_all_trials.sh", project / "scripts")
    # the script checks the architecture against the registry and conf/regdb first
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    runs = {t: _metrics("fienet", _regdb_protocol(t, seed=10 + t)) for t in range(1, 11)}
    (project / "fixtures").mkdir()
    for t, m in runs.items():
        (project / "fixtures" / f"trial_{t}.json").write_text(json.dumps(m))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kedro = bin_dir / "kedro"
    kedro.write_text(_FAKE_KEDRO.format(python=sys.executable))
    kedro.chmod(kedro.stat().st_mode | stat.S_IEXEC)
    python_dir = Path(sys.executable).parent  # `python -m reid_pipeline...` of this venv
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{python_dir}{os.pathsep}{os.environ['PATH']}",
    }
    script = project / "scripts" / "regdb_all_trials.sh"

    done = subprocess.run(
        ["bash", str(script), "fienet", "--runner=SequentialRunner"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in (project / "kedro_calls.jsonl").read_text().splitlines()]
    assert len(calls) == 10
    for n, call in enumerate(calls, start=1):
        assert call == [
            "run",
            "--env=regdb",
            "--pipeline=train_fienet",
            f"--params=datasets.cross_modality.options.trial={n},"
            f"fienet.paper.checkpoint_dir=data/06_models/fienet/regdb_trials/trial_{n}",
            "--runner=SequentialRunner",
        ]
    trials_dir = project / "data" / "08_reporting" / "regdb_trials"
    for t, m in runs.items():
        assert json.loads((trials_dir / f"fienet_trial_{t}.json").read_text()) == m
    mean = json.loads((trials_dir / "fienet_mean.json").read_text())
    for row in mean["settings"]:
        expected = np.mean(
            [m["protocols"]["settings"][row["setting"]]["mean"]["mAP"] for m in runs.values()]
        )
        assert row["mAP"] == pytest.approx(expected)
        assert row["trials"] == 10
    assert "fienet on regdb: mean ± std over 10 trials" in done.stdout
    assert "thermal_to_visible" in done.stdout
    assert "visible_to_thermal" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "usage: scripts/regdb_all_trials.sh ARCH"),
        (["resnet"], "usage:"),
        (["agw", "--params=x=1"], "--params is set by the script"),
        (["dimn"], "dimn is a single-modality architecture"),
    ],
)
def test_regdb_all_trials_script_refuses_bad_arguments(args: list[str], message: str) -> None:
    python_dir = Path(sys.executable).parent  # the script's `python` is this venv's
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "regdb_all_trials.sh"), *args],
        capture_output=True,
        text=True,
        timeout=120,  # the script imports the model registry (torch)
        check=False,
        env={**os.environ, "PATH": f"{python_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert done.returncode == 2
    assert message in done.stderr


# ------------------------------------------------------------------------------ pipeline


@pytest.mark.slow
def test_report_pipeline_on_two_trained_architectures(kedro_project: Path, run_pipeline) -> None:
    """Two tiny trainings (a single-modality and a visible-infrared architecture), then
    ``kedro run --pipeline=report``: the table holds each one's numbers from its metrics.json."""
    for arch in ("bot", "fienet"):
        run_pipeline(f"train_{arch}", tiny_params(arch))
    run_pipeline("report")
    reporting = kedro_project / "data" / "08_reporting"
    text = (reporting / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["architecture", "bot", "fienet"]
    for arch, row in zip(("bot", "fienet"), rows[1:], strict=True):
        m = json.loads((reporting / arch / "metrics.json").read_text())
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == m["dataset"]
        assert cells[2] == m["trained"]["protocol"]
        assert cells[3:6] == [f"{100 * m['trained'][k]:.1f}" for k in ("R1", "mAP", "mINP")]
        assert cells[8] == f"{m['model']['params'] / 1e6:.1f}"
        assert cells[9] == f"{m['training']['images_seen']:,}"
        assert cells[10] == f"{m['training']['seconds']:.1f}"
        assert cells[11] == f"{m['training']['images_per_s']:.1f}"
        # tiny_params: one epoch of the recipe's P x K batches
        summary = json.loads(
            (kedro_project / "data/06_models" / arch / "training_summary.json").read_text()
        )
        assert m["training"]["images_seen"] == summary["images_seen"] > 0
    assert rows[1].split("|")[2].strip() == "market1501"
    assert rows[2].split("|")[2].strip() == "sysu_mm01"
    with Image.open(reporting / "report.png") as img:
        assert img.size[0] > 800


def test_metrics_of_an_older_model_are_left_out() -> None:
    fresh = {"trained": {"R1": 0.5, "mAP": 0.4, "mINP": 0.2}, "model": {"run_id": "B"}}
    stale = {"trained": {"R1": 0.9, "mAP": 0.9, "mINP": 0.9}, "model": {"run_id": "A"}}
    specs = {"bot/model_spec.json": lambda: {"run_id": "B"}, "dimn/": lambda: {"run_id": "B"}}
    table = collect_metrics(
        {"bot/": lambda: fresh, "dimn/": lambda: stale}, order=["bot", "dimn"], specs=specs
    )
    assert table["architecture"].tolist() == ["bot"]
