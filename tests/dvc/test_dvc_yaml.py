"""dvc.yaml against the code and configuration it describes: every stage runs a registered
pipeline, declares every file that pipeline writes, depends on what it reads (code, catalog,
exactly the parameter keys its pipeline reads, its own raw folder), and DVC itself parses the
graph as intended. The stages are expanded by DVC's own parser (``foreach``, ``vars``)."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.io.catalog_config_resolver import CatalogConfigResolver
from kedro.pipeline import Pipeline
from omegaconf import OmegaConf

from reid_pipeline.data.synthetic import resolve_options
from reid_pipeline.experiment import parse_config, select_experiment
from reid_pipeline.settings import CONFIG_LOADER_ARGS
from reid_pipeline.train_template.pipeline import ARCHITECTURES, create_train_pipeline
from tests.dvc.conftest import ROOT, dvc, load_yaml, resolve_stages

STAGE_PIPELINES = {"generate": "generate_synthetic", "ingest": "ingest", "report": "report"}


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
    """The files the catalog gives to the pipeline's outputs (in-memory ones left out)."""
    resolver = CatalogConfigResolver(load_yaml(ROOT / "conf" / "base" / "catalog.yml"))
    files = set()
    for name in pipeline.all_outputs():
        config = resolver.resolve_pattern(name)
        if "filepath" in config:
            files.add(config["filepath"])
    return files


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return resolve_stages(tmp_path_factory.mktemp("dvc"))


@pytest.fixture(scope="module")
def base_params(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """conf/base resolved as `kedro run` resolves it, without anybody's conf/local."""
    conf = tmp_path_factory.mktemp("conf")
    shutil.copytree(ROOT / "conf" / "base", conf / "base")
    (conf / "local").mkdir()
    return OmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS)["parameters"]


def test_one_train_stage_per_architecture(stages: dict[str, dict[str, Any]]) -> None:
    assert sorted(stages) == sorted(
        ["generate", "ingest", "report", *[f"train@{a}" for a in ARCHITECTURES]]
    )


def _selection(arch: str, params: dict[str, Any]) -> dict[str, str]:
    """What ``train_<arch>`` reads of the parameters it receives: the recipe
    ``recipes.<arch>`` names, the ``datasets`` slot that recipe names, and the ``protocols``
    entry of that dataset (``select_experiment``)."""
    recipe = params["recipes"][arch]
    slot = params[arch][recipe]["dataset_slot"]
    return {"recipe": recipe, "slot": slot, "dataset": params["datasets"][slot]["name"]}


def _runtime_params(cmd: str) -> dict[str, Any]:
    """The ``--params`` of a stage command as ``kedro run`` parses them (nested dict)."""
    m = re.search(r"--params=(\S+)", cmd)
    return OmegaConf.to_container(OmegaConf.from_dotlist(m.group(1).split(","))) if m else {}


def test_commands_run_the_registered_pipelines(
    stages: dict[str, dict[str, Any]], base_params: dict[str, Any]
) -> None:
    for name, stage in stages.items():
        m = re.fullmatch(r"kedro run --pipeline=(\w+)(?: --params=(\S+))?", stage["cmd"])
        assert m, f"{name}: {stage['cmd']!r} is not `kedro run --pipeline=NAME [--params=...]`"
        pipeline = m.group(1)
        assert (ROOT / "src" / "reid_pipeline" / "pipelines" / pipeline / "__init__.py").is_file()
        expected = f"train_{name.split('@')[1]}" if "@" in name else STAGE_PIPELINES[name]
        assert pipeline == expected
        if "@" in name:  # a DVC run never resumes from an older run's checkpoint
            arch = name.split("@")[1]
            recipe = base_params["recipes"][arch]
            assert m.group(2) == f"{arch}.{recipe}.fit.resume=false"
        else:
            assert m.group(2) is None


def test_resume_override_reaches_the_recipe_that_runs(
    stages: dict[str, dict[str, Any]], base_params: dict[str, Any]
) -> None:
    """The stage's ``--params`` merged into conf/base as Kedro merges runtime parameters: the
    selected recipe, once checked, has ``fit.resume`` false (and nothing else changed)."""
    for arch in ARCHITECTURES:
        runtime = _runtime_params(stages[f"train@{arch}"]["cmd"])
        merged = OmegaConf.to_container(OmegaConf.merge(base_params, runtime))
        recipe = merged["recipes"][arch]
        block = merged[arch]
        params = select_experiment(
            block, recipe=recipe, datasets=merged["datasets"], protocols=merged["protocols"]
        )
        config = parse_config(params, name=arch)
        assert config.fit["resume"] is False, arch
        fit, base_fit = block[recipe]["fit"], base_params[arch][recipe]["fit"]
        if "resume" in base_fit:
            fit["resume"] = base_fit["resume"]
        else:
            del fit["resume"]
        assert block == base_params[arch], f"{arch}: --params changed more than fit.resume"


def test_train_stage_follows_the_selected_recipe(tmp_path: Path) -> None:
    """`dvc exp run -S conf/base/parameters.yml:recipes.dimn=paper`: the dimn stage's command
    and its params switch to the paper recipe (through `vars`); the others stay."""
    before = resolve_stages(tmp_path / "before")
    after = resolve_stages(
        tmp_path / "after", overrides={"conf/base/parameters.yml": {"recipes.dimn": "paper"}}
    )
    assert "--params=dimn.paper.fit.resume=false" in after["train@dimn"]["cmd"]
    params = {f: k for p in after["train@dimn"]["params"] for f, k in p.items()}
    assert params["conf/base/parameters_train_dimn.yml"] == ["dimn.paper"]
    assert "recipes.dimn" in params["conf/base/parameters.yml"]
    for name in before:
        if name != "train@dimn":
            assert after[name] == before[name], name


def test_every_file_a_pipeline_writes_is_a_stage_output(
    stages: dict[str, dict[str, Any]],
) -> None:
    for name, stage in stages.items():
        outs = _outs(stage)
        for path in _written_files(_pipeline(name)):
            covered = [o for o in outs if path == o or path.startswith(o.rstrip("/") + "/")]
            assert covered, f"{name}: {path} is written by the pipeline but not a DVC output"


def test_every_stage_output_is_written_by_its_stage(stages: dict[str, dict[str, Any]]) -> None:
    """No stale outputs: each declared path is a file the pipeline writes, a folder holding
    some, or (generate) a synthetic dataset folder."""
    generate = load_yaml(ROOT / "conf/base/parameters_generate_synthetic.yml")
    root = generate["generate_synthetic"]["root"]
    generated = {
        f"{root}/{resolve_options(d['layout']).folder}"
        for d in generate["generate_synthetic"]["datasets"]
    }
    for name, stage in stages.items():
        written = _written_files(_pipeline(name))
        for out in _outs(stage):
            hits = [w for w in written if w == out or w.startswith(out + "/")]
            assert hits or (name == "generate" and out in generated), f"{name}: {out} never written"


def test_checkpoints_are_no_output(stages: dict[str, dict[str, Any]]) -> None:
    for name, stage in stages.items():
        assert not [o for o in _outs(stage) if "checkpoints" in o], name


def test_dependencies_exist_or_come_from_an_earlier_stage(
    stages: dict[str, dict[str, Any]],
) -> None:
    produced = {out: name for name, stage in stages.items() for out in _outs(stage)}
    for name, stage in stages.items():
        for dep in stage["deps"]:
            if dep.startswith("data/"):
                assert dep in produced, f"{name}: {dep} is produced by no stage"
                assert produced[dep] != name
            else:
                assert (ROOT / dep).exists(), f"{name}: dependency {dep} does not exist"


def test_train_stages_depend_on_the_code_they_import(stages: dict[str, dict[str, Any]]) -> None:
    """Every reid_pipeline subpackage the train template imports (directly or not) is a dep."""
    for arch in ARCHITECTURES:
        deps = set(stages[f"train@{arch}"]["deps"])
        for package in (
            "data",
            "models",
            "losses",
            "engine",
            "evaluation",
            "experiment",
            "viz",
            "io",
            "train_template",
            "pipelines/ingest",
            f"pipelines/train_{arch}",
        ):
            assert f"src/reid_pipeline/{package}" in deps, (arch, package)
        assert {"conf/base/catalog.yml", "src/reid_pipeline/settings.py"} <= deps


def _declared_params(stage: dict[str, Any]) -> dict[str, set[str] | None]:
    """``{file: keys}`` of a stage's ``params`` (``None``: the whole file)."""
    out: dict[str, set[str] | None] = {}
    for entry in stage.get("params", []):
        ((path, keys),) = entry.items()
        out[path] = None if keys is None else set(keys)
    return out


def test_train_stages_read_their_own_dataset(
    stages: dict[str, dict[str, Any]], base_params: dict[str, Any]
) -> None:
    """The raw folder and the ``datasets`` / ``protocols`` keys a train stage depends on are
    the ones its selected recipe resolves to (conf/base as committed)."""
    for arch in ARCHITECTURES:
        stage = stages[f"train@{arch}"]
        chosen = _selection(arch, base_params)
        params = select_experiment(
            base_params[arch],
            recipe=chosen["recipe"],
            datasets=base_params["datasets"],
            protocols=base_params["protocols"],
        )
        dataset = params["dataset"]
        folder = f"{dataset['root']}/{resolve_options(dataset['name']).folder}"
        raw = [d for d in stage["deps"] if d.startswith("data/")]
        assert raw == [folder], arch
        shared = _declared_params(stage)["conf/base/parameters.yml"]
        assert f"datasets.{chosen['slot']}" in shared, arch
        if dataset["name"] in base_params["protocols"]:
            assert f"protocols.{dataset['name']}" in shared, arch
        else:  # DVC rejects a key the file lacks: the whole mapping stands in
            assert "protocols" in shared, arch


def _param_files() -> dict[str, str]:
    """Top-level parameter key -> the conf/base file that defines it."""
    owner: dict[str, str] = {}
    for path in sorted((ROOT / "conf" / "base").glob("parameters*.yml")):
        rel = path.relative_to(ROOT).as_posix()
        for key in load_yaml(path) or {}:
            assert key not in owner, f"{key} is defined in {owner[key]} and {rel}"
            owner[key] = rel
    return owner


def _reads(name: str, base_params: dict[str, Any]) -> dict[str, set[str]]:
    """The parameter keys a stage's pipeline reads, per conf/base file. A train pipeline
    receives its whole ``<arch>`` block, ``datasets`` and ``protocols`` but reads only the
    selected recipe, its dataset slot and that dataset's protocol entry (``select_experiment``),
    so those are the keys; a protocol entry that does not exist stays ``protocols``."""
    keys = {i.removeprefix("params:") for i in _pipeline(name).inputs() if i.startswith("params:")}
    if name.startswith("train@"):
        arch = name.split("@")[1]
        chosen = _selection(arch, base_params)
        protocol = chosen["dataset"]
        narrow = {
            arch: f"{arch}.{chosen['recipe']}",
            "datasets": f"datasets.{chosen['slot']}",
            "protocols": (
                f"protocols.{protocol}" if protocol in base_params["protocols"] else "protocols"
            ),
        }
        keys = {narrow.get(k, k) for k in keys}
    owner = _param_files()
    out: dict[str, set[str]] = {}
    for key in keys:
        out.setdefault(owner[key.split(".")[0]], set()).add(key)
    return out


def test_params_are_exactly_what_each_pipeline_reads(
    stages: dict[str, dict[str, Any]], base_params: dict[str, Any]
) -> None:
    """Every parameter a stage's pipeline reads is a DVC param of the stage (a change reruns
    it), and nothing else is (a change elsewhere reruns nothing)."""
    for name, stage in stages.items():
        assert _declared_params(stage) == _reads(name, base_params), name


def test_params_name_existing_files_and_keys(stages: dict[str, dict[str, Any]]) -> None:
    for name, stage in stages.items():
        for entry in stage.get("params", []):
            ((path, keys),) = entry.items()
            assert (ROOT / path).is_file(), f"{name}: params file {path} is missing"
            data = load_yaml(ROOT / path)
            for key in keys or []:
                node = data
                for part in key.split("."):
                    assert isinstance(node, dict), f"{name}: {path}:{key} is not a mapping key"
                    assert part in node, f"{name}: {path} has no key {key}"
                    node = node[part]


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def test_real_downloads_never_overlap_a_stage_output(stages: dict[str, dict[str, Any]]) -> None:
    """`dvc add data/01_raw/<folder>` (the README's real-data recipe) for the folder every
    real-data environment reads: no stage writes into it, inside it or around it (DVC refuses
    to track a path a stage output overlaps)."""
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


def test_top_level_plots_draw_declared_outputs(stages: dict[str, dict[str, Any]]) -> None:
    outs = {o for stage in stages.values() for o in _outs(stage)}
    spec = load_yaml(ROOT / "dvc.yaml")
    for plot in spec["plots"]:
        ((title, props),) = plot.items()
        assert props["y"], title
        for path in props["y"]:
            assert path in outs, f"plot {title!r}: {path} is no stage output"
    plotted = {p for plot in spec["plots"] for props in plot.values() for p in props["y"]}
    assert {f"data/08_reporting/{a}/cmc.csv" for a in ARCHITECTURES} <= plotted
    assert {f"data/08_reporting/{a}/training_history.csv" for a in ARCHITECTURES} <= plotted


def test_dvc_reads_the_graph(tmp_path: Path) -> None:
    """DVC's own parser: the expanded stages and the edges generate -> ingest,
    generate -> train@<arch> (its dataset) -> report."""
    resolve_stages(tmp_path)  # a DVC repository with dvc.yaml and its `vars` files
    listed = dvc("stage", "list", "--name-only", cwd=tmp_path).split()
    assert sorted(listed) == sorted(
        ["generate", "ingest", "report", *[f"train@{a}" for a in ARCHITECTURES]]
    )
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
    expected = {("generate", "ingest"), *{(f"train@{a}", "report") for a in ARCHITECTURES}}
    expected |= {("generate", f"train@{a}") for a in ARCHITECTURES}
    assert arrows == expected


def test_generate_pipeline_is_namespaced() -> None:
    """The generate stage's pipeline: one Kedro-Viz group, no dotted-name warning, and the
    parameter and catalog names conf/base defines."""
    from reid_pipeline.pipelines.generate_synthetic import create_pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline = create_pipeline()
    assert [n.name for n in pipeline.nodes] == ["generate_synthetic.generate_datasets"]
    assert pipeline.inputs() == {
        "params:generate_synthetic.root",
        "params:generate_synthetic.datasets",
    }
    assert pipeline.outputs() == {"generate_synthetic.synthetic_report"}
    assert "generate_synthetic.synthetic_report" in load_yaml(ROOT / "conf/base/catalog.yml")


def _set_param_case(path: str) -> tuple[str, str, Any]:
    """For a params file: a key, the `-S` value and the value it must become."""
    name = Path(path).name
    m = re.fullmatch(r"parameters_train_(\w+)\.yml", name)
    if m:
        return f"{m.group(1)}.cpu_synthetic.optimizer.lr", "0.002", 0.002
    cases = {
        "parameters.yml": ("recipes.dimn", "paper", "paper"),
        "parameters_generate_synthetic.yml": ("generate_synthetic.root", "data/raw2", "data/raw2"),
        "parameters_ingest.yml": ("ingest.dataset_slot", "cross_modality", "cross_modality"),
        "parameters_report.yml": ("report.order", "[dimn,bot]", ["dimn", "bot"]),
    }
    assert name in cases, f"add a `dvc exp run -S` case for {path}"
    return cases[name]


def _has_interpolation(node: Any) -> bool:
    if isinstance(node, str):
        return "${" in node
    if isinstance(node, dict):
        return any(_has_interpolation(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_interpolation(v) for v in node)
    return False


def _params_files() -> list[str]:
    """Every parameters file of conf/base (the stages' params files are among them)."""
    return sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "conf" / "base").glob("parameters*.yml")
    )


@pytest.mark.parametrize("path", _params_files())
def test_dvc_set_param_changes_one_key(path: str, tmp_path: Path) -> None:
    """`dvc exp run -S FILE:KEY=VALUE` edits FILE through DVC's own override code: KEY gets
    VALUE and nothing else in the file is resolved or lost. Every params file is plain YAML
    (DVC loads it with OmegaConf, which knows no Kedro resolver)."""
    from dvc.utils.hydra import apply_overrides

    assert not _has_interpolation(load_yaml(ROOT / path)), f"{path} holds an interpolation"
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
