"""dvc.yaml against the code and configuration it describes, its stages expanded by DVC's own
parser: every registered model has a train stage (the one list to extend is named when one is
missing), each stage's params exist, its outputs are the files the catalog gives its pipeline,
its dependencies cover the code the train pipeline imports, and DVC draws the intended graph."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.io.catalog_config_resolver import CatalogConfigResolver
from kedro.pipeline import Pipeline

from reid_pipeline.data.synthetic import resolve_options
from reid_pipeline.experiment.recipe import recipe_names
from reid_pipeline.models import list_models
from reid_pipeline.pipelines.train import create_train_pipeline
from tests.dvc.conftest import ROOT, dump_yaml, dvc, load_yaml, resolve_stages, run, train_list

STAGE_PIPELINES = {"generate": "generate_synthetic", "ingest": "ingest", "report": "report"}
#: reid_pipeline modules the train pipeline imports that cannot change what it writes
NOT_OUTPUT_RELEVANT = {"errors", "runlock"}


def _paths(entries: list[Any]) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def _outs(stage: dict[str, Any]) -> list[str]:
    return [p for kind in ("outs", "metrics", "plots") for p in _paths(stage.get(kind, []))]


def _pipeline(stage_name: str) -> Pipeline:
    if stage_name.startswith("train@"):
        return create_train_pipeline(stage_name.split("@", 1)[1])
    module = __import__(
        f"reid_pipeline.pipelines.{STAGE_PIPELINES[stage_name]}", fromlist=["create_pipeline"]
    )
    return module.create_pipeline()


def _written_files(pipeline: Pipeline) -> set[str]:
    """The files (or folders: ``path``) the catalog gives to the pipeline's outputs (in-memory
    ones left out)."""
    resolver = CatalogConfigResolver(load_yaml(ROOT / "conf" / "base" / "catalog.yml"))
    files = set()
    for name in pipeline.all_outputs():
        config = resolver.resolve_pattern(name)
        for key in ("filepath", "path"):
            if key in config:
                files.add(config[key])
    return files


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _covered(path: str, outs: list[str]) -> bool:
    """``path`` is an output, inside one, or a folder holding some (DVCLive's folder: its
    summary is a metric, its curves a plot)."""
    return any(_overlap(path, o) for o in outs)


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return resolve_stages(tmp_path_factory.mktemp("dvc"))


def test_every_registered_model_has_a_train_stage(stages: dict[str, dict[str, Any]]) -> None:
    listed = train_list(load_yaml(ROOT / "dvc.yaml"))
    for name in list_models():
        assert name in listed, (
            f"model {name!r} is registered but DVC does not train it: add '{name}' to the "
            "`foreach` list of the `train` stage in dvc.yaml"
        )
    for name in listed:
        assert name in list_models(), f"dvc.yaml: `train` foreach names {name!r}, no model"
    assert len(listed) == len(set(listed)), "dvc.yaml: `train` foreach names a model twice"
    assert sorted(stages) == sorted([*STAGE_PIPELINES, *[f"train@{a}" for a in listed]])


def test_commands_run_the_registered_pipelines(stages: dict[str, dict[str, Any]]) -> None:
    for name, stage in stages.items():
        if "@" in name:
            arch = name.split("@")[1]
            # a DVC run never resumes from an older run's checkpoint
            tail = f"kedro run --pipeline=train_{arch} --params={arch}.$recipe.fit.resume=false"
            assert stage["cmd"].startswith("recipe=$(python -c "), name
            assert stage["cmd"].endswith(f") && {tail}"), name
        else:
            assert stage["cmd"] == f"kedro run --pipeline={STAGE_PIPELINES[name]}", name


def test_resume_override_names_the_recipe_that_runs(
    stages: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The train command's recipe lookup, run for real, reads what `kedro run` reads: conf/base
    with conf/local over it, where ``recipe_override`` names agw (one run: a Python start with
    torch costs seconds)."""
    shutil.copytree(ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    dump_yaml(
        {"recipe_override": {"single_modality": "paper", "agw": "cpu_synthetic_vi"}},
        tmp_path / "conf" / "local" / "parameters.yml",
    )
    cmd = stages["train@agw"]["cmd"].replace(" && kedro run", " && echo kedro run")
    out = run(["sh", "-c", cmd], tmp_path).stdout
    assert out.strip().splitlines()[-1] == (
        "kedro run --pipeline=train_agw --params=agw.cpu_synthetic_vi.fit.resume=false"
    )


def _declared_params(stage: dict[str, Any]) -> dict[str, list[str]]:
    return {path: keys for entry in stage.get("params", []) for path, keys in entry.items()}


def test_params_exist_and_cover_what_each_pipeline_reads(
    stages: dict[str, dict[str, Any]],
) -> None:
    """Every key a stage lists exists in its file (DVC rejects a missing one), and every
    parameter its pipeline receives is under a listed key (a change to it reruns the stage).
    A train stage lists its whole ``<arch>`` block: a change to a recipe that does not run
    reruns it too (conservative)."""
    for name, stage in stages.items():
        listed: set[str] = set()
        for path, keys in _declared_params(stage).items():
            assert (ROOT / path).is_file(), f"{name}: params file {path} is missing"
            data = load_yaml(ROOT / path)
            for key in keys:
                node = data
                for part in key.split("."):
                    assert isinstance(node, dict), f"{name}: {path}:{key} is no mapping key"
                    assert part in node, f"{name}: {path} has no key {key}"
                    node = node[part]
                listed.add(key)
        for param in sorted(_pipeline(name).inputs()):
            if not param.startswith("params:"):
                continue
            key = param.removeprefix("params:")
            assert any(key == k or key.startswith(k + ".") for k in listed), (
                f"{name}: its pipeline reads {key}, which no `params` entry covers"
            )
        if "@" in name:
            arch = name.split("@")[1]
            assert _declared_params(stage)[f"conf/base/parameters_train_{arch}.yml"] == [arch]


def test_outputs_are_the_files_the_catalog_gives_each_pipeline(
    stages: dict[str, dict[str, Any]],
) -> None:
    """Each output holds files its pipeline writes, and every file a pipeline writes is an
    output - but for a train stage the files only some architectures write (DIMN's stripes):
    one stage definition serves all of them, so those are written but never declared."""
    generate = load_yaml(ROOT / "conf/base/parameters_generate_synthetic.yml")["generate_synthetic"]
    generated = {
        f"{generate['root']}/{resolve_options(d['layout']).folder}" for d in generate["datasets"]
    }
    archs = [n.split("@")[1] for n in stages if "@" in n]
    per_arch = {
        a: {f.replace(f"/{a}/", "/<arch>/") for f in _written_files(_pipeline(f"train@{a}"))}
        for a in archs
    }
    common = set.intersection(*per_arch.values())
    for name, stage in stages.items():
        outs = _outs(stage)
        written = _written_files(_pipeline(name))
        for out in outs:
            hits = [w for w in written if _overlap(w, out)]
            assert hits or (name == "generate" and out in generated), f"{name}: {out} never written"
        for path in written:
            if "@" in name and path.replace(f"/{name.split('@')[1]}/", "/<arch>/") not in common:
                assert not _covered(path, outs), f"{name}: {path} is not written for every model"
                continue
            assert _covered(path, outs), f"{name}: {path} is written by the pipeline, no output"
        assert not [o for o in outs if "checkpoints" in o], f"{name}: checkpoints are an output"
    assert "data/08_reporting/<arch>/metrics.json" in common
    live = load_yaml(ROOT / "conf/base/parameters.yml")["live_metrics_dir"]
    for arch in archs:  # where training writes its DVCLive files while it runs
        assert _covered(live.format(arch=arch), _outs(stages[f"train@{arch}"])), arch


def test_dependencies_exist_and_cover_the_train_code(stages: dict[str, dict[str, Any]]) -> None:
    """Every dependency exists or is another stage's output, and every module of the project a
    train run imports (pipeline, nodes, hooks, settings) is under a dependency of each train
    stage (a change to it reruns the stage)."""
    produced = {out for stage in stages.values() for out in _outs(stage)}
    for name, stage in stages.items():
        for dep in stage["deps"]:
            exists = (ROOT / dep).exists() or dep.startswith(("data/06_", "data/07_"))
            assert exists or dep in produced, f"{name}: dependency {dep} does not exist"
    code = (
        "import sys, json; import reid_pipeline.settings, reid_pipeline.pipeline_registry; "
        "from reid_pipeline.pipelines.train import nodes, create_train_pipeline; "
        "from reid_pipeline.experiment import run, checks; "
        "[create_train_pipeline(a) for a in sys.argv[1:]]; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('reid_pipeline'))))"
    )
    archs = [n.split("@")[1] for n in stages if "@" in n]
    done = subprocess.run(
        [sys.executable, "-c", code, *archs], capture_output=True, text=True, check=True, cwd=ROOT
    )
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    for arch in archs:
        deps = stages[f"train@{arch}"]["deps"]
        for module in modules:
            parts = module.split(".")[1:]
            if not parts or parts[0] in NOT_OUTPUT_RELEVANT:
                continue
            src = ROOT / "src" / Path(*["reid_pipeline", *parts])
            path = (src if src.is_dir() else src.with_suffix(".py")).relative_to(ROOT).as_posix()
            assert _covered(path, deps), f"train@{arch}: imports {module}, no dependency covers it"


def test_real_downloads_never_overlap_a_stage_output(stages: dict[str, dict[str, Any]]) -> None:
    """`dvc add data/01_raw/<folder>` for the folder every real-data environment reads: no stage
    writes into it, inside it or around it (DVC refuses to track such a path)."""
    outs = [(name, o) for name, stage in stages.items() for o in _outs(stage)]
    checked = 0
    for env in sorted(p for p in (ROOT / "conf").iterdir() if p.is_dir()):
        if env.name in ("base", "local") or not (env / "parameters.yml").is_file():
            continue
        for dataset in (load_yaml(env / "parameters.yml").get("datasets") or {}).values():
            if dataset.get("synthetic", True) is not None:
                continue  # the embedded data, generated by the pipeline
            folder = f"{dataset['root']}/{resolve_options(dataset['name']).folder}"
            for name, out in outs:
                assert not _overlap(folder, out), f"{env.name}: {folder} overlaps {name}: {out}"
            checked += 1
    assert checked >= 7  # market1501, dukemtmc, cuhk03, msmt17, sysu_mm01, regdb, llcm


def test_dvc_reads_the_graph(tmp_path: Path) -> None:
    """DVC's own parser: generate -> ingest, generate -> train@<arch> -> report."""
    archs = train_list(load_yaml(ROOT / "dvc.yaml"))
    resolve_stages(tmp_path)
    edges = set()
    for line in dvc("dag", "--mermaid", cwd=tmp_path).splitlines():
        m = re.match(r'\s*(node\d+)\["([^"]+)"\]', line)
        if m:
            edges.add(("name", m.group(1), m.group(2)))
        m = re.match(r"\s*(node\d+)-->(node\d+)", line)
        if m:
            edges.add(("edge", m.group(1), m.group(2)))
    names = {n: label for kind, n, label in edges if kind == "name"}
    arrows = {(names[a], names[b]) for kind, a, b in edges if kind == "edge"}
    expected = {("generate", "ingest")}
    expected |= {("generate", f"train@{a}") for a in archs} | {
        (f"train@{a}", "report") for a in archs
    }
    assert arrows == expected


def _set_param_case(path: str) -> tuple[str, str, Any]:
    """For a params file: a key, the `-S` value and the value it must become."""
    name = Path(path).name
    m = re.fullmatch(r"parameters_train_(\w+)\.yml", name)
    if m:  # switch to another recipe of the block (or change a value of its only one)
        arch = m.group(1)
        block = load_yaml(ROOT / path)[arch]
        others = [r for r in recipe_names(block) if r != block["recipe"]]
        if others:
            return f"{arch}.recipe", others[0], others[0]
        epochs = block[block["recipe"]]["fit"]["epochs"] + 1  # a block with one recipe
        return f"{arch}.{block['recipe']}.fit.epochs", str(epochs), epochs
    cases = {
        "parameters.yml": ("datasets.single_modality.name", "dukemtmc", "dukemtmc"),
        "parameters_generate_synthetic.yml": ("generate_synthetic.root", "data/raw2", "data/raw2"),
        "parameters_ingest.yml": ("ingest.dataset_slot", "cross_modality", "cross_modality"),
        "parameters_report.yml": ("report.order", "[dimn,bot]", ["dimn", "bot"]),
    }
    assert name in cases, f"add a `dvc exp run -S` case for {path}"
    return cases[name]


def _stage_params_files() -> list[str]:
    """The params files dvc.yaml's stages read (``${item}`` over the train list)."""
    spec = load_yaml(ROOT / "dvc.yaml")
    files = set()
    for stage in spec["stages"].values():
        for entry in stage.get("do", stage).get("params", []):
            for path in entry if isinstance(entry, dict) else [entry]:
                files |= {path.replace("${item}", a) for a in train_list(spec)}
    return sorted(files)


@pytest.mark.parametrize("path", _stage_params_files())
def test_dvc_set_param_changes_one_key(path: str, tmp_path: Path) -> None:
    """`dvc exp run -S FILE:KEY=VALUE` edits FILE through DVC's own override code: KEY gets
    VALUE and nothing else in the file is resolved or lost (every params file is plain YAML;
    DVC loads it with OmegaConf, which knows no Kedro resolver)."""
    from dvc.utils.hydra import apply_overrides

    assert "${" not in (ROOT / path).read_text(), f"{path} holds an interpolation"
    key, value, expected = _set_param_case(path)
    copy = tmp_path / Path(path).name
    shutil.copy(ROOT / path, copy)
    before = yaml.safe_load(copy.read_text())
    apply_overrides(copy, [f"{key}={value}"])
    after = yaml.safe_load(copy.read_text())
    *head, last = key.split(".")
    parent_after, parent_before = after, before
    for part in head:
        parent_after, parent_before = parent_after[part], parent_before[part]
    assert parent_before[last] != expected  # the case really changes the value
    assert parent_after[last] == expected
    parent_after[last] = parent_before[last]
    assert after == before
