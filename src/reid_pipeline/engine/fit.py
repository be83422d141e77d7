"""``fit()``: one training function for every model of the contract (MODELS.md).

Ours (the project's engine, no paper): the loop is the usual ReID one (fast-reid / torchreid /
the BoT code): per batch ``model(images, targets=pids, modality=...) -> ReidOutput``,
``criterion(output, pids, modality) -> (total, terms)``, backward, optional gradient clipping by
norm, optimiser step; the learning rate follows ``optim.LRSchedule`` (per epoch). What ``fit`` adds:

- exact resume: a checkpoint (``checkpoint.py``) after every epoch, written atomically by rank 0;
  re-running the same call continues from the last complete epoch and, on CPU with the same seed,
  ends with bit-identical weights, because every epoch re-seeds all RNGs from ``(seed, epoch)``
  (``seed.py``, ``loader.start_epoch``) instead of saving RNG state objects;
- NaN / inf losses stop the run (``NonFiniteLossError``) before anything is saved that epoch;
- validation (a closure evaluating held-out identities) every ``val_every`` epochs and at the end,
  keeping the best weights by ``select_metric`` in ``best.pt``;
- DDP when started by torchrun (gloo on CPU, NCCL on CUDA), bf16 autocast / channels_last /
  non-blocking transfers on CUDA (``device.py``), optional ``torch.compile``;
- a rich progress bar and a per-epoch log line; the curve in ``history.csv``.

The per-iteration work is in ``loop.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from reid_pipeline.engine import checkpoint as ckpt
from reid_pipeline.engine.device import (
    resolve_channels_last,
    resolve_device,
    resolve_precision,
)
from reid_pipeline.engine.distributed import (
    DistContext,
    barrier,
    broadcast_buffers,
    broadcast_object,
    setup_distributed,
    teardown_distributed,
)
from reid_pipeline.engine.history import History, append_row, to_csv, to_frame
from reid_pipeline.engine.loader import prepare_train_loader, start_epoch
from reid_pipeline.engine.loop import TrainStep, train_epoch
from reid_pipeline.engine.optim import build_loss_optimizers, build_optimizer, build_scheduler
from reid_pipeline.engine.progress import add_task, make_progress
from reid_pipeline.engine.seed import seed_everything

logger = logging.getLogger(__name__)

Validate = Callable[[nn.Module], Mapping[str, float]]


@dataclass
class FitResult:
    """What ``fit`` returns. ``history`` has one row per epoch: ``epoch`` (1-based), ``loss``
    (weighted total), ``loss_<term>``, ``lr_<group>`` (at the epoch's start), ``images_per_s``,
    ``time_s`` and ``val_<metric>`` (NaN on epochs without validation). ``state_dict`` holds the
    final weights (CPU); ``best_*`` the best validated epoch (None without validation)."""

    history: pd.DataFrame
    state_dict: dict[str, Tensor]
    best_epoch: int | None
    best_metric: float | None
    best_state_dict: dict[str, Tensor] | None
    best_path: Path | None
    checkpoint_path: Path | None
    resumed_from: int | None


def _plain(obj: Any) -> Any:
    """Parameters (possibly OmegaConf-like mappings) as plain dicts / lists / scalars."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str):  # numpy / torch scalars
        return obj.item()
    return obj


def _check_args(
    *,
    epochs: int,
    val_every: int,
    grad_clip: float | None,
    select_mode: str,
    criterion: Any,
    validate: Any,
) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: expected an int >= 1, got {epochs!r}")
    if isinstance(val_every, bool) or not isinstance(val_every, int) or val_every < 1:
        raise ValueError(f"val_every: expected an int >= 1, got {val_every!r}")
    if grad_clip is not None and (isinstance(grad_clip, bool) or not grad_clip > 0):
        raise ValueError(f"grad_clip: expected None or a number > 0, got {grad_clip!r}")
    if select_mode not in ("max", "min"):
        raise ValueError(f"select_mode: expected 'max' or 'min', got {select_mode!r}")
    if not isinstance(criterion, nn.Module):
        raise TypeError(
            f"criterion: expected an nn.Module (build_criterion(...)), got "
            f"{type(criterion).__name__}"
        )
    if validate is not None and not callable(validate):
        raise TypeError(f"validate: expected a callable model -> metrics dict, got {validate!r}")


def _restore(
    path: Path,
    *,
    model: nn.Module,
    criterion: nn.Module,
    opt: torch.optim.Optimizer,
    loss_opts: list[torch.optim.Optimizer],
    config: dict[str, Any],
    epochs: int,
    world_size: int,
    log: logging.Logger,
) -> dict:
    state = ckpt.load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != ckpt.CHECKPOINT_FORMAT:
        raise ckpt.CheckpointError(
            f"checkpoint {path} is not a fit() checkpoint "
            f"(expected format {ckpt.CHECKPOINT_FORMAT!r})"
        )
    saved = state.get("config", {})
    changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    if changed:
        raise ckpt.CheckpointError(
            f"checkpoint {path} was written with other settings for {changed} "
            f"(file: {[saved.get(k) for k in changed]}, now: {[config.get(k) for k in changed]})."
            " Use another checkpoint_dir, or resume=False to start over."
        )
    if state["epoch"] > epochs:
        raise ckpt.CheckpointError(
            f"checkpoint {path} already holds {state['epoch']} epochs, more than epochs={epochs}"
        )
    if state.get("world_size", 1) != world_size:
        log.warning(
            "checkpoint %s was written by %d processes, resuming with %d: the data order "
            "differs from an uninterrupted run",
            path,
            state.get("world_size"),
            world_size,
        )
    ckpt.load_module_state(model, state["model"], source=path)
    ckpt.load_module_state(criterion, state["criterion"], source=path, what="criterion")
    ckpt.load_optimizer_state(opt, state["optimizer"], source=path)
    saved_loss = state.get("loss_optimizers", [])
    if len(saved_loss) != len(loss_opts):
        raise ckpt.CheckpointError(
            f"checkpoint {path} has {len(saved_loss)} loss optimisers, the current criterion "
            f"{len(loss_opts)}. Use another checkpoint_dir, or resume=False to start over."
        )
    for lo, lo_state in zip(loss_opts, saved_loss, strict=True):
        ckpt.load_optimizer_state(lo, lo_state, source=path)
    return state


def _check_metrics(metrics: Any, select_metric: str) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"validate() must return a dict of metric -> float, got {metrics!r}")
    if select_metric not in metrics:
        raise ValueError(
            f"validate() returned metrics {sorted(metrics)}; select_metric "
            f"{select_metric!r} is not among them"
        )
    return {str(k): float(v) for k, v in metrics.items()}


def _run_validation(
    validate: Validate, model: nn.Module, ctx: DistContext, select_metric: str
) -> dict[str, float]:
    """Rank 0 validates; every rank gets its metrics (or its error) so all decide alike."""
    result: tuple[str, Any] = ("ok", None)
    if ctx.is_main:
        was_training = model.training
        model.eval()
        try:
            result = ("ok", _check_metrics(validate(model), select_metric))
        except Exception as exc:
            if not ctx.enabled:
                raise
            result = ("error", f"{type(exc).__name__}: {exc}")
        finally:
            model.train(was_training)
    result = broadcast_object(result, ctx)
    if result[0] == "error":
        raise RuntimeError(f"validate() failed on rank 0: {result[1]}")
    return result[1]


def fit(
    model: nn.Module,
    train_loader: Iterable[Mapping[str, Tensor]],
    criterion: nn.Module,
    *,
    epochs: int,
    optimizer: Mapping[str, Any],
    scheduler: Mapping[str, Any] | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    channels_last: bool | str = "auto",
    compile: bool = False,
    grad_clip: float | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    seed: int = 0,
    validate: Validate | None = None,
    val_every: int = 1,
    select_metric: str = "mAP",
    select_mode: str = "max",
    distributed: bool | None = None,
    find_unused_parameters: bool = False,
    progress: bool = True,
    log: logging.Logger = logger,
) -> FitResult:
    """Train ``model`` on ``train_loader`` with ``criterion`` for ``epochs`` epochs.

    ``optimizer`` / ``scheduler``: specs of ``optim.build_optimizer`` / ``optim.build_scheduler``.
    ``device``: "auto" | "cpu" | "cuda[:N]"; ``precision``: "auto" (bf16 on CUDA with bf16
    support, else fp32) | "fp32" | "bf16"; ``channels_last``: "auto" (on for CUDA) | bool;
    ``compile``: wrap the training forward in ``torch.compile``. ``grad_clip``: max gradient norm.
    ``checkpoint_dir``: where ``last.pt``, ``best.pt`` and ``history.csv`` go (None: nothing is
    written); ``resume``: continue from ``last.pt`` when present. ``seed``: every epoch re-seeds
    from ``(seed, epoch)``. ``validate(model) -> {metric: value}`` runs every ``val_every`` epochs
    and after the last one, on rank 0; the best epoch by ``select_metric`` (``select_mode`` max or
    min) is kept. ``distributed``: None = DDP when launched by torchrun, True = required, False =
    off; ``find_unused_parameters`` is passed to DDP. ``progress``: rich bar on rank 0; ``log``:
    where the per-epoch line goes.
    """
    _check_args(
        epochs=epochs,
        val_every=val_every,
        grad_clip=grad_clip,
        select_mode=select_mode,
        criterion=criterion,
        validate=validate,
    )
    dev = resolve_device(device)
    amp_dtype = resolve_precision(precision, dev)
    use_cl = resolve_channels_last(channels_last, dev)
    ctx = setup_distributed(distributed, device=dev)
    try:
        seed_everything(seed)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        model.to(dev)
        if use_cl:
            model.to(memory_format=torch.channels_last)
        criterion.to(dev)
        loader = prepare_train_loader(train_loader, ctx=ctx)
        try:
            iters: int | None = len(loader)  # type: ignore[arg-type]
        except TypeError:
            iters = None
        opt = build_optimizer(model, optimizer, criterion=criterion)
        loss_opts = build_loss_optimizers(criterion, optimizer)
        sched = build_scheduler(scheduler, epochs=epochs, iters_per_epoch=iters or 1)
        if sched.per_iteration and iters is None:
            raise ValueError("scheduler.warmup_per_iter needs a loader with a length")
        sched_state = sched.state_dict()
        config = {
            "seed": int(seed),
            "optimizer": _plain(optimizer),
            "grad_clip": grad_clip,
            "scheduler": {
                k: v for k, v in sched_state.items() if k not in ("epochs", "iters_per_epoch")
            },
        }

        ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        last_path = ckdir / ckpt.LAST_NAME if ckdir else None
        best_path = ckdir / ckpt.BEST_NAME if ckdir else None
        history: History = {}
        start, best_metric, best_epoch, best_state, resumed_from = 0, None, None, None, None
        if last_path is not None and resume and last_path.is_file():
            state = _restore(
                last_path,
                model=model,
                criterion=criterion,
                opt=opt,
                loss_opts=loss_opts,
                config=config,
                epochs=epochs,
                world_size=ctx.world_size,
                log=log,
            )
            start = resumed_from = int(state["epoch"])
            history = {k: list(v) for k, v in state["history"].items()}
            best_metric, best_epoch = state.get("best_metric"), state.get("best_epoch")
            if best_epoch is not None and best_path is not None and best_path.is_file():
                best_state = ckpt.load_checkpoint(best_path)["model"]
            if ctx.is_main:
                log.info("resuming from %s: %d of %d epochs done", last_path, start, epochs)

        train_model: nn.Module = model
        if ctx.enabled:
            train_model = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[dev.index] if dev.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
            )
        if compile:
            train_model = torch.compile(train_model)  # type: ignore[assignment]
        step = TrainStep(
            train_model=train_model,
            criterion=criterion,
            opt=opt,
            loss_opts=loss_opts,
            sched=sched,
            device=dev,
            amp_dtype=amp_dtype,
            channels_last=use_cl,
            cross_modality=bool(getattr(model, "cross_modality", False)),
            grad_clip=grad_clip,
            ctx=ctx,
        )

        with make_progress(enabled=progress and ctx.is_main) as bar:
            task = add_task(bar, "train", iters)
            for epoch in range(start, epochs):
                start_epoch(loader, seed=seed, epoch=epoch)
                sched.apply(opt, epoch, 0)
                lrs = {
                    f"lr_{g['name']}": g["lr"] for o in (opt, *loss_opts) for g in o.param_groups
                }
                bar.reset(task, total=iters, description=f"epoch {epoch + 1}/{epochs}", info="")
                last_good = (
                    f"the last good checkpoint (end of epoch {epoch}) is kept at {last_path}"
                    if last_path is not None and last_path.is_file()
                    else "no checkpoint was written yet"
                )
                means, seen, seconds = train_epoch(
                    step,
                    loader,
                    epoch=epoch,
                    epochs=epochs,
                    iters=iters,
                    progress=bar,
                    task=task,
                    last_good=last_good,
                )
                broadcast_buffers(model, ctx)
                row = {
                    "epoch": epoch + 1,
                    **means,
                    **lrs,
                    "images_per_s": seen * ctx.world_size / max(seconds, 1e-9),
                    "time_s": seconds,
                }
                improved = False
                if validate is not None and ((epoch + 1) % val_every == 0 or epoch + 1 == epochs):
                    metrics = _run_validation(validate, model, ctx, select_metric)
                    row.update({f"val_{k}": v for k, v in metrics.items()})
                    value = metrics[select_metric]
                    improved = best_metric is None or (
                        value > best_metric if select_mode == "max" else value < best_metric
                    )
                    if improved:
                        best_metric, best_epoch = value, epoch + 1
                        best_state = ckpt.cpu_state_dict(model)
                append_row(history, row)
                if ckdir is not None and ctx.is_main:
                    if improved:  # best before last: a crash in between re-runs this epoch
                        ckpt.atomic_save(
                            {
                                "model": best_state,
                                "epoch": epoch + 1,
                                "metric": best_metric,
                                "select_metric": select_metric,
                            },
                            best_path,
                        )  # type: ignore[arg-type]
                    ckpt.atomic_save(
                        {
                            "format": ckpt.CHECKPOINT_FORMAT,
                            "epoch": epoch + 1,
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "loss_optimizers": [o.state_dict() for o in loss_opts],
                            "scheduler": {**sched_state, "epoch": epoch + 1},
                            "criterion": criterion.state_dict(),
                            "history": history,
                            "best_metric": best_metric,
                            "best_epoch": best_epoch,
                            "config": config,
                            "world_size": ctx.world_size,
                        },
                        last_path,
                    )  # type: ignore[arg-type]
                    ckpt.atomic_write_text(to_csv(history), ckdir / ckpt.HISTORY_NAME)
                if ctx.is_main:
                    log.info(
                        "epoch %d/%d  %s",
                        epoch + 1,
                        epochs,
                        _describe(row, select_metric, improved),
                    )
        barrier(ctx)
        return FitResult(
            history=to_frame(history),
            state_dict=ckpt.cpu_state_dict(model),
            best_epoch=best_epoch,
            best_metric=best_metric,
            best_state_dict=best_state,
            best_path=best_path if best_epoch is not None else None,
            checkpoint_path=last_path,
            resumed_from=resumed_from,
        )
    finally:
        teardown_distributed(ctx)


def _describe(row: Mapping[str, float], select_metric: str, improved: bool) -> str:
    losses = "  ".join(
        f"{k.removeprefix('loss_')} {v:.4f}" for k, v in row.items() if k.startswith("loss_")
    )
    lrs = " ".join(f"{v:.2e}" for k, v in row.items() if k.startswith("lr_"))
    text = (
        f"loss {row['loss']:.4f} ({losses})  lr {lrs}  {row['images_per_s']:.1f} img/s  "
        f"{row['time_s']:.1f} s"
    )
    vals = [f"{k.removeprefix('val_')} {v:.4f}" for k, v in row.items() if k.startswith("val_")]
    if vals:
        text += "  | val " + " ".join(vals) + (f"  (best {select_metric})" if improved else "")
    return text
