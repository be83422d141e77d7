"""Toolbox checkpoints -> the project's model folders: the name mapping against the toolboxes'
own model code (fast-reid 1.4.0 and torchreid 0.2.5 from the package index, built in a scratch
folder by ``toolbox_reference.py`` in a subprocess), and the refusals, offline."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import load_file
from torch import nn

from reid_pipeline.convert import (
    build_converted,
    convert_checkpoint,
    convert_state,
    read_checkpoint,
)
from reid_pipeline.convert.__main__ import main
from reid_pipeline.errors import CheckpointError, DataError, WeightsError
from reid_pipeline.experiment.run import rebuild_model

PACKAGES = {"fastreid": "fastreid==1.4.0", "torchreid": "torchreid==0.2.5"}
REFERENCE = Path(__file__).with_name("toolbox_reference.py")


@pytest.fixture(autouse=True)
def _threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _scratch() -> Path:
    d = Path(os.environ.get("REID_TOOLBOX_SOURCES", Path(tempfile.gettempdir())))
    d = d / "reid_pipeline_toolbox_sources"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _source(toolbox: str) -> Path:
    """The unpacked sdist of ``toolbox`` (downloaded once into a scratch folder); skips the
    test when it cannot be downloaded."""
    scratch = _scratch()
    unpacked = next((p for p in scratch.glob(f"{toolbox}-*") if p.is_dir()), None)
    if unpacked is not None:
        return unpacked
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        PACKAGES[toolbox],
        "--no-deps",
        "--no-binary",
        ":all:",
        "-d",
        str(scratch),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    archives = list(scratch.glob(f"{toolbox}-*.tar.gz"))
    if done.returncode != 0 or not archives:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot download {PACKAGES[toolbox]}'s source from the package index ({why})")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(scratch, filter="data")
    return next(p for p in scratch.glob(f"{toolbox}-*") if p.is_dir())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """``reference(toolbox, arch)`` -> (checkpoint path, {"images", "embedding"})."""
    made: dict[tuple[str, str], tuple[Path, dict]] = {}

    def get(toolbox: str, arch: str) -> tuple[Path, dict]:
        if (toolbox, arch) not in made:
            root = _source(toolbox)
            out = tmp_path_factory.mktemp(f"{toolbox}_{arch}")
            cmd = [sys.executable, str(REFERENCE), toolbox, arch, str(root), str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
            assert done.returncode == 0, done.stderr[-2000:]
            ref = torch.load(out / "reference.pt", weights_only=True)
            made[toolbox, arch] = (out / "checkpoint.pth", ref)
        return made[toolbox, arch]

    return get


def _embed(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(images)


def _assert_same(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    assert want.abs().max() > 0.1  # a meaningful scale: 1e-5 is relative to O(1) values
    assert (got - want).abs().max().item() <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bot", "agw"])
def test_fastreid_weights_give_fastreids_embedding(reference, arch: str) -> None:
    checkpoint, ref = reference("fastreid", arch)
    converted = convert_state("fastreid", read_checkpoint(checkpoint), arch)
    assert converted.num_classes == 11
    assert converted.options["stem_pool"] == "fastreid"
    model = build_converted(converted)
    _assert_same(_embed(model, ref["images"]), ref["embedding"])
    # torchvision's stem pool (padding 1) shifts the windows: not fast-reid's embedding
    torchvision_pool = build_converted(
        dataclasses.replace(converted, options={**converted.options, "stem_pool": "torchvision"})
    )
    gap = (_embed(torchvision_pool, ref["images"]) - ref["embedding"]).abs().max().item()
    assert gap > 1e-3


@pytest.mark.slow
def test_fastreid_model_dir_gives_fastreids_embedding(reference, tmp_path: Path) -> None:
    checkpoint, ref = reference("fastreid", "bot")
    spec = convert_checkpoint("fastreid", "bot", checkpoint, tmp_path)
    assert spec["kwargs"]["stem_pool"] == "fastreid"
    model = rebuild_model(spec, load_file(tmp_path / "model.safetensors"))
    _assert_same(_embed(model, ref["images"]), ref["embedding"])


@pytest.mark.slow
def test_torchreid_resnet50_model_dir_gives_torchreids_embedding(reference, tmp_path: Path) -> None:
    checkpoint, ref = reference("torchreid", "bot")
    with pytest.raises(WeightsError, match=r"classifier\.bias"):
        convert_checkpoint("torchreid", "bot", checkpoint, tmp_path / "refused")
    assert not (tmp_path / "refused" / "model.safetensors").exists()
    out = tmp_path / "bot"
    assert (
        main(
            [
                "--from",
                "torchreid",
                "--arch",
                "bot",
                str(checkpoint),
                "--out",
                str(out),
                "--drop-classifier-bias",
            ]
        )
        == 0
    )
    spec = json.loads((out / "model_spec.json").read_text())
    assert spec["kwargs"]["last_stride"] == 2
    assert spec["kwargs"]["neck_feat"] == "before"
    assert spec["input"] == {"height": 256, "width": 128}
    model = rebuild_model(spec, load_file(out / "model.safetensors"))  # digest checked
    _assert_same(_embed(model, ref["images"]), ref["embedding"])


# ---- offline: torchvision's ResNet has torchreid's names --------------------------------------
def _torchvision_as_torchreid(tmp_path: Path, **extra: torch.Tensor) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=7).eval()
    for m in net.modules():  # statistics away from the identity, so a wrong mapping shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(1.0, 2.0)
    state = {k.replace("fc.", "classifier."): v for k, v in net.state_dict().items()}
    path = tmp_path / "model.pth.tar"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in (state | extra).items()}, "epoch": 3}, path
    )
    net.fc = nn.Identity()
    return path, net


def test_torchvision_named_resnet18_maps_exactly_offline(tmp_path: Path) -> None:
    path, net = _torchvision_as_torchreid(tmp_path)
    spec = convert_checkpoint(
        "torchreid", "bot", path, tmp_path / "out", drop_classifier_bias=True, input_size=(64, 32)
    )
    assert spec["kwargs"]["backbone"] == "resnet18"
    assert spec["num_classes"] == 7
    model = rebuild_model(spec, load_file(tmp_path / "out" / "model.safetensors"))
    images = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(_embed(model, images), _embed(net, images), atol=1e-5, rtol=0)


def test_unmapped_keys_are_refused_by_name(tmp_path: Path) -> None:
    path, _ = _torchvision_as_torchreid(tmp_path, **{"fc.0.weight": torch.zeros(512, 512)})
    with pytest.raises(WeightsError, match=r"resnet50_fc512.*fc\.0\.weight"):
        convert_checkpoint("torchreid", "bot", path, tmp_path / "o", drop_classifier_bias=True)
    with pytest.raises(WeightsError, match="no AGW"):
        convert_state("torchreid", read_checkpoint(path), "agw")


def test_fastreid_refusals() -> None:
    conv = torch.zeros(64, 3, 7, 7)
    ibn = {"backbone.conv1.weight": conv, "backbone.layer1.0.bn1.IN.weight": torch.ones(32)}
    with pytest.raises(WeightsError, match=r"backbone\.layer1\.0\.bn1\.IN\.weight"):
        convert_state("fastreid", ibn, "bot")
    with pytest.raises(WeightsError, match="--arch agw"):
        convert_state("fastreid", {"backbone.NL_2.0.g.weight": torch.ones(1, 512, 1, 1)}, "bot")
    with pytest.raises(WeightsError, match="pixel_mean"):
        convert_state("fastreid", {"pixel_mean": torch.zeros(1, 3, 1, 1)}, "bot")


def test_unreadable_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_checkpoint(tmp_path / "nothing.pth")
    code = tmp_path / "code.pth"
    torch.save({"model": {"a": torch.ones(1)}, "cfg": nn.ReLU()}, code)  # an object: code
    with pytest.raises(CheckpointError, match="weights_only"):
        read_checkpoint(code)
    odd = tmp_path / "odd.pth"
    torch.save({"a": torch.ones(1), "b": 3}, odd)
    with pytest.raises(CheckpointError, match="not tensors"):
        read_checkpoint(odd)


def test_the_command_prints_one_line_on_a_known_error(tmp_path: Path, capsys) -> None:
    rc = main(
        [
            "--from",
            "fastreid",
            "--arch",
            "bot",
            str(tmp_path / "x.pth"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: checkpoint")
    assert "\n" not in err
