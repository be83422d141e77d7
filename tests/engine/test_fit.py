"""fit(): training, history / CSV, validation and best weights, NaN stop, resume, errors."""

from __future__ import annotations

import copy
import errno
import logging
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from reid_pipeline.engine import (
    CheckpointError,
    NonFiniteLossError,
    atomic_save,
    fit,
    load_checkpoint,
)
from reid_pipeline.engine.fit import lr_scale
from reid_pipeline.errors import DiskFullError
from reid_pipeline.losses import Criterion

from .tiny import OPTIMIZER, SCHEDULER, NaNAt, TinyCE, TinyDataset, TinyModel, make_criterion
from .tiny import make_loader as _make_loader


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: threads only add noise on a shared machine
    yield
    torch.set_num_threads(threads)


def _run(tmp: Path | None, *, epochs: int = 3, num_classes: int = 4, **kwargs):
    torch.manual_seed(0)
    model = TinyModel(num_classes=num_classes)
    criterion = kwargs.pop("criterion", None) or make_criterion(num_classes)
    loader = kwargs.pop("loader", None) or _make_loader(TinyDataset(32, num_classes))
    options = {"optimizer": OPTIMIZER, "scheduler": SCHEDULER, "progress": False, **kwargs}
    result = fit(model, loader, criterion, epochs=epochs, checkpoint_dir=tmp, **options)
    return model, criterion, result


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_trains_and_writes_history_csv_and_checkpoint(tmp_path: Path) -> None:
    model, criterion, result = _run(tmp_path, epochs=4)
    h = result.history
    assert list(h["epoch"]) == [1, 2, 3, 4]
    assert h["loss"].iloc[-1] < h["loss"].iloc[0]
    assert {
        "loss",
        "loss_ce",
        "loss_center",
        "lr_default",
        "lr_criterion.center",
        "images_per_s",
        "time_s",
    } <= set(h.columns)
    # total = ce + 0.01 * center, averaged per epoch
    assert h["loss"].to_numpy() == pytest.approx(
        (h["loss_ce"] + 0.01 * h["loss_center"]).to_numpy(), rel=1e-5
    )
    # SCHEDULER: warm-up from 0.1 for one epoch, x0.1 from epoch index 2
    assert list(h["lr_default"]) == pytest.approx([0.005, 0.05, 0.005, 0.005])
    # the centres' own SGD (BoT) is outside the schedule: lr 0.5 / weight 0.01 throughout
    assert list(h["lr_criterion.center"]) == pytest.approx([50.0] * 4)
    assert (h["images_per_s"] > 0).all()

    csv = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(csv, h, check_dtype=False)

    state = load_checkpoint(tmp_path / "last.pt")  # weights_only=True
    assert state["epoch"] == 4
    assert set(state) >= {
        "model",
        "optimizer",
        "scheduler",
        "criterion",
        "history",
        "best_metric",
        "best_epoch",
        "config",
    }
    assert _equal(state["model"], {k: v.cpu() for k, v in model.state_dict().items()})
    assert _equal(state["model"], result.state_dict)
    centers = criterion.terms[1].centers[0].detach()
    assert torch.equal(state["criterion"]["terms.1.centers.0"], centers)
    assert len(state["loss_optimizers"]) == 1
    assert state["history"]["loss"] == list(h["loss"])
    assert result.best_epoch is None
    assert result.best_path is None
    assert result.checkpoint_path == tmp_path / "last.pt"


def test_validation_keeps_best_epoch(tmp_path: Path) -> None:
    scores = iter([0.2, 0.7, 0.4, 0.6])
    snapshots: list[dict] = []

    def validate(model: torch.nn.Module) -> dict[str, float]:
        assert not model.training  # fit switches to eval for validation
        snapshots.append(copy.deepcopy(model.state_dict()))
        return {"mAP": next(scores), "R1": 0.5}

    model, _, result = _run(tmp_path, epochs=4, validate=validate)
    assert model.training
    assert result.best_epoch == 2
    assert result.best_metric == pytest.approx(0.7)
    assert list(result.history["val_mAP"]) == pytest.approx([0.2, 0.7, 0.4, 0.6])
    assert _equal(result.best_state_dict, snapshots[1])
    best = load_checkpoint(result.best_path)
    assert best["epoch"] == 2
    assert best["select_metric"] == "mAP"
    assert _equal(best["model"], snapshots[1])
    assert not _equal(best["model"], result.state_dict)


def test_val_every_and_min_mode(tmp_path: Path) -> None:
    calls: list[int] = []

    def validate(model: torch.nn.Module) -> dict[str, float]:
        calls.append(1)
        return {"loss": 10.0 - len(calls)}

    _, _, result = _run(
        None, epochs=5, validate=validate, val_every=2, select_metric="loss", select_mode="min"
    )
    assert len(calls) == 3  # epochs 2, 4 and the last one
    assert math.isnan(result.history["val_loss"].iloc[0])
    assert result.best_epoch == 5
    assert result.best_path is None
    assert result.best_state_dict is not None


def test_validate_without_select_metric_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\['R1'\]; select_metric 'mAP'"):
        _run(None, epochs=1, validate=lambda m: {"R1": 0.1})


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    iters = 4  # 32 images / batch 8
    nan_term = NaNAt(at_call=iters + 3)  # epoch 2, iteration 3
    criterion = Criterion([("ce", 1.0, TinyCE()), ("spiky", 1.0, nan_term)])
    with pytest.raises(NonFiniteLossError) as info:
        _run(tmp_path, epochs=3, criterion=criterion)
    message = str(info.value)
    assert "epoch 2/3, iteration 3/4" in message
    assert "['total', 'spiky']" in message
    assert "(end of epoch 1)" in message
    assert str(tmp_path / "last.pt") in message
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1


def test_resume_continues_to_same_weights(tmp_path: Path) -> None:
    _, _, full = _run(tmp_path / "full", epochs=4, validate=lambda m: {"mAP": 0.1})
    _, _, part = _run(tmp_path / "part", epochs=2, validate=lambda m: {"mAP": 0.1})
    assert part.resumed_from is None
    _, _crit, resumed = _run(tmp_path / "part", epochs=4, validate=lambda m: {"mAP": 0.1})
    assert resumed.resumed_from == 2
    assert _equal(resumed.state_dict, full.state_dict)
    pd.testing.assert_frame_equal(
        resumed.history.drop(columns=["images_per_s", "time_s"]),
        full.history.drop(columns=["images_per_s", "time_s"]),
    )
    assert resumed.best_epoch == full.best_epoch == 1
    assert _equal(resumed.best_state_dict, full.best_state_dict)
    # a finished run re-run returns at once with the same weights
    _, _, again = _run(tmp_path / "part", epochs=4)
    assert again.resumed_from == 4
    assert _equal(again.state_dict, full.state_dict)


def test_resume_false_starts_over(tmp_path: Path) -> None:
    _run(tmp_path, epochs=2)
    _, _, result = _run(tmp_path, epochs=1, resume=False)
    assert result.resumed_from is None
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fingerprint_is_stored_in_last_and_best(tmp_path: Path) -> None:
    fp = {"model": "aa11", "train_data": "bb22"}
    _run(tmp_path, epochs=1, fingerprint=fp, validate=lambda m: {"mAP": 0.5})
    last = load_checkpoint(tmp_path / "last.pt")
    best = load_checkpoint(tmp_path / "best.pt")
    assert last["fingerprint"] == fp  # as given
    assert set(last["config"]) == {"seed", "optimizer", "scheduler", "grad_clip"}  # fit's own
    assert "epochs" not in last["config"]["scheduler"]
    assert best["fingerprint"] == fp
    assert best["config"] == last["config"]
    assert last["epochs"] == 1


def test_other_fingerprint_restarts_and_moves_old_files_aside(tmp_path: Path, caplog) -> None:
    _run(tmp_path, epochs=2, fingerprint={"model": "a", "input": "x"})
    old_last = (tmp_path / "last.pt").read_bytes()
    with caplog.at_level(logging.WARNING, logger="reid_pipeline.engine.fit"):
        _, _, result = _run(tmp_path, epochs=2, fingerprint={"model": "b", "input": "x"})
    assert result.resumed_from is None
    stale = result.stale_dir
    assert stale is not None
    assert stale.parent == tmp_path / "stale"
    assert _files(stale) == ["history.csv", "last.pt"]
    assert (stale / "last.pt").read_bytes() == old_last
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    message = warning[0].getMessage()
    assert "model" in message
    assert "input" not in message  # only what differs
    assert str(stale) in message
    # trained from scratch: the same weights as a fresh run with the new settings
    _, _, fresh = _run(tmp_path / "fresh", epochs=2, fingerprint={"model": "b", "input": "x"})
    assert _equal(result.state_dict, fresh.state_dict)
    assert load_checkpoint(tmp_path / "last.pt")["fingerprint"]["model"] == "b"
    # and the new run resumes from its own checkpoint
    _, _, again = _run(tmp_path, epochs=2, fingerprint={"model": "b", "input": "x"})
    assert again.resumed_from == 2
    assert again.stale_dir is None


def test_on_mismatch_error_names_what_differs_and_touches_nothing(tmp_path: Path) -> None:
    _run(tmp_path, epochs=1, fingerprint={"model": "a", "losses": "l"})
    before = _files(tmp_path)
    with pytest.raises(CheckpointError) as info:
        _run(tmp_path, epochs=2, fingerprint={"model": "b", "losses": "l"}, on_mismatch="error")
    message = str(info.value)
    assert str(tmp_path / "last.pt") in message
    assert "other settings: model." in message
    assert "on_mismatch='restart'" in message
    assert _files(tmp_path) == before
    # the engine's own components need no caller fingerprint
    with pytest.raises(
        CheckpointError,
        match=r"fit optimizer \(\{'lr': 0\.05\} in the checkpoint, \{'lr': 0\.1\} now\)",
    ):
        _run(
            tmp_path,
            epochs=2,
            fingerprint={"model": "a", "losses": "l"},
            optimizer={**OPTIMIZER, "lr": 0.1},
            on_mismatch="error",
        )
    with pytest.raises(CheckpointError, match=r"fit seed \(0 in the checkpoint, 1 now\)"):
        _run(
            tmp_path,
            epochs=2,
            fingerprint={"model": "a", "losses": "l"},
            seed=1,
            on_mismatch="error",
        )
    with pytest.raises(CheckpointError, match=r"train_data \(only now\)"):
        _run(
            tmp_path,
            epochs=2,
            fingerprint={"model": "a", "losses": "l", "train_data": "t"},
            on_mismatch="error",
        )


def test_weights_of_another_shape_count_as_a_mismatch(tmp_path: Path) -> None:
    _run(tmp_path, epochs=1, num_classes=4)
    loader = _make_loader(TinyDataset(30, 5), batch_size=6)
    with pytest.raises(
        CheckpointError, match=r"model weights \(head\.classifier\.weight: \(4, 16\) in the"
    ):
        _run(tmp_path, epochs=1, num_classes=5, loader=loader, on_mismatch="error")
    _, _, result = _run(tmp_path, epochs=1, num_classes=5, loader=loader)
    assert result.resumed_from is None
    assert result.stale_dir is not None


def test_checkpoint_without_fingerprint_is_a_mismatch(tmp_path: Path) -> None:
    _run(tmp_path, epochs=1)
    old = load_checkpoint(tmp_path / "last.pt")
    del old["fingerprint"]
    old["format"] = "reid_pipeline.fit/1"  # as written before fingerprints
    atomic_save(old, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="no fingerprint"):
        _run(tmp_path, epochs=2, on_mismatch="error")
    _, _, result = _run(tmp_path, epochs=2)
    assert result.resumed_from is None
    assert _files(result.stale_dir) == ["history.csv", "last.pt"]


def test_more_epochs_resume_with_a_step_schedule(tmp_path: Path, caplog) -> None:
    _run(tmp_path, epochs=2)
    with caplog.at_level(logging.INFO, logger="reid_pipeline.engine.fit"):
        _, _, result = _run(tmp_path, epochs=3)
    assert result.resumed_from == 2
    assert "extending from 2 to 3 epochs" in caplog.text
    assert load_checkpoint(tmp_path / "last.pt")["epochs"] == 3


def test_more_epochs_with_cosine_or_fewer_epochs_start_fresh(tmp_path: Path) -> None:
    cosine = {"name": "cosine", "warmup_epochs": 1}
    _run(tmp_path / "cos", epochs=2, scheduler=cosine)
    with pytest.raises(CheckpointError, match=r"epochs \(2 in the checkpoint, 3 now: the cosine"):
        _run(tmp_path / "cos", epochs=3, scheduler=cosine, on_mismatch="error")
    _, _, result = _run(tmp_path / "cos", epochs=3, scheduler=cosine)
    assert result.resumed_from is None
    assert result.stale_dir is not None
    _run(tmp_path / "two", epochs=2)
    with pytest.raises(CheckpointError, match=r"already holds 2, more than epochs=1"):
        _run(tmp_path / "two", epochs=1, on_mismatch="error")
    _, _, shorter = _run(tmp_path / "two", epochs=1)
    assert shorter.resumed_from is None
    assert load_checkpoint(tmp_path / "two" / "last.pt")["epoch"] == 1


def test_corrupt_last_or_best_is_one_line(tmp_path: Path) -> None:
    _run(tmp_path, epochs=1, validate=lambda m: {"mAP": 0.5})
    best = (tmp_path / "best.pt").read_bytes()
    (tmp_path / "best.pt").write_bytes(best[: len(best) // 2])
    with pytest.raises(CheckpointError, match=r"best\.pt is truncated.*delete it to start fresh"):
        _run(tmp_path, epochs=2, validate=lambda m: {"mAP": 0.5})
    last = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(last[:100])
    with pytest.raises(CheckpointError, match=r"last\.pt is truncated.*delete it to start fresh"):
        _run(tmp_path, epochs=2)


def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    _run(tmp_path, epochs=1)
    before = (tmp_path / "last.pt").read_bytes()
    real_save = torch.save

    def full(obj, fh, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, fh, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DiskFullError, match=r"No space left on device while writing .*last\.pt"):
        _run(tmp_path, epochs=2)
    monkeypatch.undo()
    assert (tmp_path / "last.pt").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    _, _, result = _run(tmp_path, epochs=2)  # the same command again, once there is space
    assert result.resumed_from == 1


def test_lr_scale_rule() -> None:
    assert lr_scale("none", 8) == 1.0
    assert lr_scale("linear", 8) == 8.0
    assert lr_scale("sqrt", 4) == 2.0
    # one process: nothing changes, but the choice is part of the run's settings
    _, _, plain = _run(None, epochs=1)
    _, _, scaled = _run(None, epochs=1, lr_scaling="linear")
    assert _equal(plain.state_dict, scaled.state_dict)


def test_deterministic_switches_during_fit_and_restores_them() -> None:
    seen: list[tuple] = []

    class Spy(TinyCE):
        def forward(self, output, pids, modality=None):
            seen.append(
                (
                    torch.are_deterministic_algorithms_enabled(),
                    torch.is_deterministic_algorithms_warn_only_enabled(),
                    torch.backends.cudnn.deterministic,
                    torch.backends.cudnn.benchmark,
                )
            )
            return super().forward(output, pids, modality)

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    _run(None, epochs=1, criterion=Criterion([("ce", 1.0, Spy())]), deterministic=True)
    assert set(seen) == {(True, True, True, False)}
    after = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    assert after == before
    seen.clear()
    _run(None, epochs=1, criterion=Criterion([("ce", 1.0, Spy())]))
    assert {s[0] for s in seen} == {False}


def test_criterion_computes_in_fp32_outside_autocast() -> None:
    seen: list[tuple] = []

    class Spy(TinyCE):
        def forward(self, output, pids, modality=None):
            seen.append(
                (torch.is_autocast_enabled("cpu"), output.logits[0].dtype, output.feats[0].dtype)
            )
            return super().forward(output, pids, modality)

    _run(None, epochs=1, criterion=Criterion([("ce", 1.0, Spy())]), precision="bf16")
    assert set(seen) == {(False, torch.float32, torch.float32)}


def test_grad_clip_bounds_the_update() -> None:
    torch.manual_seed(0)
    model = TinyModel()
    before = [p.detach().clone() for p in model.parameters()]
    loader = [next(iter(_make_loader(TinyDataset(8), batch_size=8)))]  # one batch, any iterable
    fit(
        model,
        loader,
        make_criterion(center=False),
        epochs=1,
        progress=False,
        optimizer={"name": "sgd", "lr": 1.0},
        grad_clip=1e-3,
    )
    step = torch.sqrt(
        sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True))
    )
    assert 0 < float(step) <= 1e-3 * 1.0001


def test_cross_modality_models_get_modality_single_modality_models_none() -> None:
    for cross in (False, True):
        torch.manual_seed(0)
        model = TinyModel(cross_modality=cross)
        fit(
            model,
            _make_loader(TinyDataset(16), batch_size=8),
            make_criterion(),
            epochs=1,
            optimizer=OPTIMIZER,
            progress=False,
        )
        seen = model.seen_modality
        assert len(seen) == 2
        if cross:
            assert all(m is not None and set(m.tolist()) == {0, 1} for m in seen)
            assert model.modality_scale.grad is not None
        else:
            assert all(m is None for m in seen)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"grad_clip": -1.0}, ValueError, "grad_clip"),
        ({"val_every": 0}, ValueError, "val_every"),
        ({"select_mode": "best"}, ValueError, "select_mode"),
        ({"precision": "fp16"}, ValueError, "precision"),
        ({"device": "tpu"}, ValueError, "device"),
        ({"validate": "mAP"}, TypeError, "validate"),
        ({"on_mismatch": "ignore"}, ValueError, "on_mismatch"),
        ({"fingerprint": {"model": 1}}, TypeError, "fingerprint"),
        ({"find_unused_parameters": "maybe"}, ValueError, "find_unused_parameters"),
        ({"deterministic": "yes"}, ValueError, "deterministic"),
        ({"lr_scaling": "quadratic"}, ValueError, "lr_scaling"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    options = {"epochs": 1, **kwargs}
    with pytest.raises(error, match=match):
        fit(
            TinyModel(),
            _make_loader(TinyDataset(8)),
            make_criterion(),
            optimizer=OPTIMIZER,
            progress=False,
            **options,
        )


def test_bad_batches_and_criterion() -> None:
    with pytest.raises(TypeError, match="criterion"):
        fit(TinyModel(), [], lambda o, p, m: 0, epochs=1, optimizer=OPTIMIZER)
    tuples = [(torch.zeros(2, 3, 16, 8), torch.zeros(2, dtype=torch.long))]
    with pytest.raises(TypeError, match=r"train loader.*dicts"):
        fit(TinyModel(), tuples, make_criterion(), epochs=1, optimizer=OPTIMIZER, progress=False)
    with pytest.raises(ValueError, match="no batch"):
        fit(TinyModel(), [], make_criterion(), epochs=1, optimizer=OPTIMIZER, progress=False)


def test_progress_bar_runs(capsys) -> None:
    _run(None, epochs=1, progress=True)
    assert "epoch 1/1" in capsys.readouterr().out


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_channels_last_training(tmp_path: Path) -> None:
    model, _, result = _run(tmp_path, epochs=2, device="cuda")
    assert next(model.parameters()).is_cuda
    assert model.backbone[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert result.history["loss"].notna().all()
    assert all(v.device.type == "cpu" for v in result.state_dict.values())
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


def test_crash_between_best_and_last_keeps_best_consistent(tmp_path: Path) -> None:
    """best.pt is written before last.pt: a crash in between leaves best.pt one epoch ahead.
    The re-run epoch may validate differently on a GPU; the best weights, epoch and metric must
    still belong together."""
    _run(tmp_path, epochs=1, validate=lambda m: {"mAP": 0.5})
    epoch1 = (tmp_path / "last.pt").read_bytes()
    _run(tmp_path, epochs=2, validate=lambda m: {"mAP": 0.9})
    best2 = load_checkpoint(tmp_path / "best.pt")
    assert best2["epoch"] == 2
    (tmp_path / "last.pt").write_bytes(epoch1)  # as if killed between best.pt and last.pt
    _, _, result = _run(tmp_path, epochs=2, validate=lambda m: {"mAP": 0.4})
    assert result.resumed_from == 1
    assert result.best_epoch == 2
    assert result.best_metric == pytest.approx(0.9)
    assert _equal(result.best_state_dict, best2["model"])
