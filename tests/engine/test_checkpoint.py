"""Atomic checkpoint writes, weights-only loading and configuration checks."""

from __future__ import annotations

import fractions
from pathlib import Path

import pytest
import torch

from reid_pipeline.engine import checkpoint as ckpt

from .tiny import TinyModel


def test_atomic_save_round_trip_weights_only(tmp_path: Path) -> None:
    state = {
        "model": TinyModel().state_dict(),
        "epoch": 3,
        "history": {"loss": [1.0, 0.5]},
        "best": None,
        "betas": (0.9, 0.99),
    }
    path = ckpt.atomic_save(state, tmp_path / "sub" / "last.pt")
    loaded = ckpt.load_checkpoint(path)
    assert loaded["epoch"] == 3
    assert loaded["history"] == {"loss": [1.0, 0.5]}
    assert loaded["betas"] == (0.9, 0.99)
    for k, v in state["model"].items():
        assert torch.equal(loaded["model"][k], v)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left


def test_crash_during_save_keeps_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    ckpt.atomic_save({"epoch": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    def exploding_save(obj, fh) -> None:
        fh.write(b"PK\x03\x04 half a zip")  # partial bytes reach the temp file...
        raise OSError("disk full")  # ...then the writer dies

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_save({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert ckpt.load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_atomic_write_text(tmp_path: Path) -> None:
    path = ckpt.atomic_write_text("a,b\n1,2\n", tmp_path / "history.csv")
    assert path.read_text() == "a,b\n1,2\n"


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"obj": fractions.Fraction(1, 3)}, path)  # an arbitrary pickled object
    with pytest.raises(ckpt.CheckpointError, match=r"evil\.pt.*weights_only"):
        ckpt.load_checkpoint(path)


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    ckpt.atomic_save({"w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ckpt.CheckpointError, match=r"last\.pt"):
        ckpt.load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        ckpt.load_checkpoint(tmp_path / "nothing.pt")


def test_state_dict_from_other_configuration_names_file_and_keys(tmp_path: Path) -> None:
    source = tmp_path / "last.pt"
    state = TinyModel(num_classes=7).state_dict()
    model = TinyModel(num_classes=5)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_module_state(model, state, source=source)
    message = str(info.value)
    assert str(source) in message
    assert "head.classifier.weight: file (7, 16) vs model (5, 16)" in message
    del state["head.classifier.weight"]
    with pytest.raises(ckpt.CheckpointError, match="missing keys"):
        ckpt.check_state_dict(model, state, source=source)
    good = TinyModel(num_classes=5)
    ckpt.load_module_state(model, good.state_dict(), source=source)
    assert torch.equal(model.head.classifier.weight, good.head.classifier.weight)


def test_optimizer_groups_mismatch_names_file(tmp_path: Path) -> None:
    from reid_pipeline.engine.optim import build_optimizer

    model = TinyModel()
    two = build_optimizer(model, {"name": "sgd", "lr": 0.1, "groups": [{"params": "head"}]})
    one = build_optimizer(model, {"name": "sgd", "lr": 0.1})
    with pytest.raises(ckpt.CheckpointError, match=r"x\.pt.*groups"):
        ckpt.load_optimizer_state(one, two.state_dict(), source=tmp_path / "x.pt")
