"""Atomic checkpoint writes, weights-only loading and configuration checks."""

from __future__ import annotations

import errno
import fractions
from pathlib import Path

import pytest
import torch

from reid_pipeline.engine import checkpoint as ckpt
from reid_pipeline.errors import CheckpointError, DiskFullError, ReidError

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


def test_full_disk_is_disk_full_error_and_keeps_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    ckpt.atomic_save({"epoch": 1}, path)
    before = path.read_bytes()

    def full_save(obj, fh) -> None:
        fh.write(b"PK\x03\x04 part")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_save)
    with pytest.raises(DiskFullError) as info:
        ckpt.atomic_save({"epoch": 2}, path)
    assert str(info.value) == (
        f"No space left on device while writing {path}; free space and run the same command "
        "again (the previous checkpoint is intact)"
    )
    assert info.value.errno == errno.ENOSPC
    assert isinstance(info.value, OSError)
    assert isinstance(info.value, ReidError)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # temp file removed

    def full_fsync(fd: int) -> None:  # the data reaches the disk only at fsync
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.os, "fsync", full_fsync)
    with pytest.raises(DiskFullError, match=r"history\.csv"):
        ckpt.atomic_write_text("a\n", tmp_path / "history.csv")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_atomic_write_text(tmp_path: Path) -> None:
    path = ckpt.atomic_write_text("a,b\n1,2\n", tmp_path / "history.csv")
    assert path.read_text() == "a,b\n1,2\n"


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"obj": fractions.Fraction(1, 3)}, path)  # an arbitrary pickled object
    with pytest.raises(ckpt.CheckpointError, match=r"evil\.pt.*weights_only"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("keep", [0, 40, -30])
def test_truncated_file_is_one_line_naming_the_file_and_what_to_do(tmp_path: Path, keep) -> None:
    path = tmp_path / "last.pt"
    ckpt.atomic_save({"w": torch.ones(100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(path)
    message = str(info.value)
    assert isinstance(info.value, ReidError)
    assert str(path) in message
    assert "truncated" in message
    assert "move it aside or delete it to start fresh" in message
    assert "\n" not in message  # not torch's page-long text
    assert len(message) < 300
    assert info.value.__context__ is None or info.value.__suppress_context__  # no torch chain


def test_garbage_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    path.write_bytes(b"\x00not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match=r"best\.pt is truncated or corrupt.*start fresh"):
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
