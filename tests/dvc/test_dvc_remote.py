"""The README's real-data recipe: ``dvc add`` a raw dataset folder and a trained model, a remote,
``dvc push``; the files removed (cache included) come back byte for byte with ``dvc pull``, and
a fresh ``git clone`` + ``dvc pull`` gets the same bytes.

RegDB (its real layout, generated tiny) stands in for the download; the weights are a real
model's ``state_dict`` written as the pipeline writes them. Released weights live under
``data/06_models/released/<dataset>/<arch>`` because ``data/06_models/<arch>/`` is an output of
the dvc.yaml train stages (DVC refuses to ``dvc add`` a path a stage owns).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from reid_pipeline.data import generate_synthetic
from reid_pipeline.experiment.run import count_parameters
from reid_pipeline.io import SafetensorsDataset
from reid_pipeline.models import create_model
from tests.dvc.conftest import assert_same_bytes, clone_project, dvc, git, run

RAW = Path("data/01_raw/RegDB")
RELEASED = Path("data/06_models/released/regdb")


@pytest.mark.slow
def test_push_remove_pull_identical(tmp_path: Path) -> None:
    project = clone_project(tmp_path / "work")
    generate_synthetic(project / "data" / "01_raw", "regdb", preset="tiny", progress=False)
    model = create_model("bot", num_classes=4, backbone="resnet18", cross_modality=True)
    SafetensorsDataset(filepath=str(project / RELEASED / "bot" / "model.safetensors")).save(
        {k: v.contiguous() for k, v in model.state_dict().items()}
    )
    spec = {"name": "bot", "num_classes": 4, "params": count_parameters(model)}
    (project / RELEASED / "bot" / "model_spec.json").write_text(json.dumps(spec))

    # dvc add: .dvc files are not hidden by the project's `data/**` rule, the data itself is
    dvc("add", str(RAW), str(RELEASED), cwd=project)
    pointers = [f"{RAW}.dvc", f"{RELEASED}.dvc"]
    status = git("status", "--porcelain", "--untracked-files=all", cwd=project).splitlines()
    assert sorted(status) == sorted(f"?? {p}" for p in pointers)
    git("add", *pointers, cwd=project)
    remote = tmp_path / "remote"
    dvc("remote", "add", "-d", "storage", str(remote), cwd=project)
    git("add", ".dvc/config", cwd=project)
    git("commit", "-q", "-m", "RegDB and released weights under DVC", cwd=project)

    pushed = dvc("push", cwd=project)
    assert re.search(r"\d+ files? pushed", pushed)
    assert "in sync" in dvc("status", "--cloud", cwd=project)

    keep = tmp_path / "before"
    for rel in (RAW, RELEASED):
        shutil.copytree(project / rel, keep / rel)
        shutil.rmtree(project / rel)
    shutil.rmtree(project / ".dvc" / "cache")
    # named targets: a plain `dvc pull` would also ask for the dvc.yaml outputs, which this
    # repository never reproduced (no dvc.lock), and exit 1
    dvc("pull", *pointers, cwd=project)
    compared = sum(assert_same_bytes(keep / rel, project / rel) for rel in (RAW, RELEASED))
    assert compared > 20
    weights = project / RELEASED / "bot" / "model.safetensors"
    assert weights.stat().st_size > 4 * 10e6  # ResNet-18 trunk in float32
    loaded = SafetensorsDataset(filepath=str(weights)).load()
    assert set(loaded) == set(model.state_dict())

    # a collaborator: git clone + dvc pull from the remote named in .dvc/config
    other = tmp_path / "other"
    run(["git", "clone", "-q", str(project), str(other)], tmp_path)
    assert not (other / RAW).exists()
    dvc("pull", *pointers, cwd=other)
    for rel in (RAW, RELEASED):
        assert_same_bytes(keep / rel, other / rel)
