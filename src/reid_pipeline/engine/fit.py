"""``fit()``: one training function for every model of the contract (docs/models.md).

Ours (the project's engine, no paper): the loop is the usual ReID one (fast-reid / torchreid /
the BoT code): per batch ``model(images, targets=pids, modality=...) -> ReidOutput``,
``criterion(output, pids, modality) -> (total, terms)`` in fp32, backward, optional gradient
clipping by norm, optimiser step; the learning rate follows ``optim.LRSchedule`` (per epoch).
What ``fit`` adds (docs/training.md tells the whole story):

- exact resume: a checkpoint (``checkpoint.py``) after every epoch, written atomically by rank 0;
  re-running the same call continues from the last complete epoch and, on CPU with the same seed,
  ends with bit-identical weights, because every epoch re-seeds all RNGs from ``(seed, epoch)``
  (``seed.py``, ``loader.start_epoch``) instead of saving RNG state objects;
- a fingerprint of the settings in every checkpoint: a run resumes only from a checkpoint of the
  same settings; another one is moved aside (``on_mismatch="restart"``) or refused (``"error"``);
- NaN / inf losses stop the run (``NonFiniteLossError``) before anything is saved that epoch;
- validation (a closure evaluating held-out identities) every ``val_every`` epochs and at the end,
  keeping the best weights by ``select_metric`` in ``best.pt``;
- DDP when started by torchrun (gloo on CPU, NCCL on CUDA, one GPU per rank, unused parameters
  found by a probe step), bf16 autocast where the GPU has native bf16 / channels_last /
  non-blocking transfers on CUDA (``device.py``), optional ``torch.compile``, optional
  deterministic algorithms;
- a rich progress bar and a per-epoch log line; the curve in ``history.csv``.

``fit`` reads as its steps: ``_Setup`` (device, loader, optimisers, fingerprint), ``_resume``
(restore or start fresh), then per epoch ``_train_epoch``, ``_validate_epoch`` and
``_save_epoch``. The per-iteration work is in ``loop.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from reid_pipeline.engine import checkpoint as ckpt
from reid_pipeline.engine.device import (
    autocast,
    fp32_region,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
    to_device,
    to_float32,
)
from reid_pipeline.engine.distributed import (
    DistContext,
    barrier,
    broadcast_buffers,
    broadcast_object,
    gather_object,
    setup_distributed,
    teardown_distributed,
)
from reid_pipeline.engine.history import History, append_row, to_csv, to_frame
from reid_pipeline.engine.loader import prepare_train_loader, start_epoch
from reid_pipeline.engine.loop import TrainStep, train_epoch
from reid_pipeline.engine.optim import (
    LRSchedule,
    build_loss_optimizers,
    build_optimizer,
    build_scheduler,
)
from reid_pipeline.engine.progress import add_task, make_progress
from reid_pipeline.engine.seed import derive_seed, seed_everything
from reid_pipeline.errors import CheckpointError

logger = logging.getLogger(__name__)

Validate = Callable[[nn.Module], Mapping[str, float]]
ON_MISMATCH = ("restart", "error")
LR_SCALINGS = ("none", "linear", "sqrt")
STALE_DIR = "stale"


def lr_scale(lr_scaling: str, world_size: int) -> float:
    """Learning-rate multiplier for ``world_size`` processes: "none" 1, "linear" ``world_size``
    (Goyal et al. 2017, for SGD), "sqrt" its square root (a cautious choice for Adam)."""
    if lr_scaling == "linear":
        return float(world_size)
    if lr_scaling == "sqrt":
        return float(world_size) ** 0.5
    return 1.0


@dataclass
class FitResult:
    """What ``fit`` returns. ``history`` has one row per epoch: ``epoch`` (1-based), ``loss``
    (weighted total), ``loss_<term>``, ``lr_<group>`` (at the epoch's start), ``images_per_s``,
    ``time_s`` and ``val_<metric>`` (NaN on epochs without validation). ``state_dict`` holds the
    final weights (CPU); ``best_*`` the best validated epoch (None without validation).
    ``stale_dir``: where a mismatching checkpoint was moved (None when none was)."""

    history: pd.DataFrame
    state_dict: dict[str, Tensor]
    best_epoch: int | None
    best_metric: float | None
    best_state_dict: dict[str, Tensor] | None
    best_path: Path | None
    checkpoint_path: Path | None
    resumed_from: int | None
    stale_dir: Path | None = None


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
    fingerprint: Any,
    on_mismatch: str,
    find_unused_parameters: Any,
    deterministic: Any,
    lr_scaling: Any,
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
    if fingerprint is not None and (
        not isinstance(fingerprint, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in fingerprint.items())
    ):
        raise TypeError(
            f"fingerprint: expected a mapping component name -> hex digest (str -> str), got "
            f"{fingerprint!r}"
        )
    if on_mismatch not in ON_MISMATCH:
        raise ValueError(f"on_mismatch: expected one of {ON_MISMATCH}, got {on_mismatch!r}")
    if find_unused_parameters not in (True, False, "auto"):
        raise ValueError(
            "find_unused_parameters: expected 'auto', True or False, got "
            f"{find_unused_parameters!r}"
        )
    if not isinstance(deterministic, bool):
        raise ValueError(f"deterministic: expected true or false, got {deterministic!r}")
    if lr_scaling not in LR_SCALINGS:
        raise ValueError(f"lr_scaling: expected one of {LR_SCALINGS}, got {lr_scaling!r}")


# ----------------------------------------------------------------------------------------------
# determinism


@contextlib.contextmanager
def _algorithms(deterministic: bool, device: torch.device) -> Iterator[None]:
    """cuDNN / deterministic-algorithm switches for the run, restored afterwards.

    ``deterministic``: ``cudnn.deterministic=True``, ``cudnn.benchmark=False``,
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` (ops without a deterministic
    kernel, e.g. the CUDA backward of adaptive pooling, warn instead of failing) and
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless already set. Otherwise cuDNN's autotuner
    (``benchmark``) is on for CUDA runs."""
    cudnn = torch.backends.cudnn
    saved = (
        cudnn.benchmark,
        cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            cudnn.benchmark, cudnn.deterministic = False, True
            torch.use_deterministic_algorithms(True, warn_only=True)
        elif device.type == "cuda":
            cudnn.benchmark = True
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


# ----------------------------------------------------------------------------------------------
# set-up


@dataclass
class _Setup:
    """Everything fixed for the run once the model, loader and optimisers are built."""

    model: nn.Module
    criterion: nn.Module
    ctx: DistContext
    dev: torch.device
    amp_dtype: torch.dtype | None
    use_cl: bool
    loader: Iterable[Any]
    iters: int | None
    opt: torch.optim.Optimizer
    loss_opts: list[torch.optim.Optimizer]
    sched: LRSchedule
    epochs: int
    seed: int
    config: dict[str, Any]  # the engine's own settings, kept in the checkpoint as plain values
    fingerprint: dict[str, str]  # the caller's: component -> digest
    ckdir: Path | None
    log: logging.Logger

    @property
    def last_path(self) -> Path | None:
        return self.ckdir / ckpt.LAST_NAME if self.ckdir else None

    @property
    def best_path(self) -> Path | None:
        return self.ckdir / ckpt.BEST_NAME if self.ckdir else None


def _setup(
    model: nn.Module,
    train_loader: Iterable[Any],
    criterion: nn.Module,
    *,
    ctx: DistContext,
    dev: torch.device,
    amp_dtype: torch.dtype | None,
    use_cl: bool,
    epochs: int,
    optimizer: Mapping[str, Any],
    scheduler: Mapping[str, Any] | None,
    grad_clip: float | None,
    seed: int,
    fingerprint: Mapping[str, str] | None,
    checkpoint_dir: str | Path | None,
    lr_scaling: str,
    log: logging.Logger,
) -> _Setup:
    """Seed, move the model, build loader / optimisers / schedule and the run's fingerprint."""
    seed_everything(seed)
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
    scale = lr_scale(lr_scaling, ctx.world_size)
    if scale != 1.0:
        for group in opt.param_groups:  # the schedule multiplies base_lr
            group["base_lr"] *= scale
            group["lr"] *= scale
    loss_opts = build_loss_optimizers(criterion, optimizer)
    sched = build_scheduler(scheduler, epochs=epochs, iters_per_epoch=iters or 1)
    if sched.per_iteration and iters is None:
        raise ValueError("scheduler.warmup_per_iter needs a loader with a length")
    config = {
        "seed": int(seed),
        "optimizer": _plain(optimizer),
        "grad_clip": grad_clip,
        "scheduler": sched.resume_settings(),
    }
    if lr_scaling != "none":  # the rates depend on the world size: resume only with the same
        config["lr_scale"] = scale
        if ctx.is_main:
            log.info(
                "lr_scaling %s: learning rates x %.4g for %d processes",
                lr_scaling,
                scale,
                ctx.world_size,
            )
    return _Setup(
        model=model,
        criterion=criterion,
        ctx=ctx,
        dev=dev,
        amp_dtype=amp_dtype,
        use_cl=use_cl,
        loader=loader,
        iters=iters,
        opt=opt,
        loss_opts=loss_opts,
        sched=sched,
        epochs=epochs,
        seed=seed,
        config=config,
        fingerprint=dict(fingerprint or {}),
        ckdir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
        log=log,
    )


# ----------------------------------------------------------------------------------------------
# resume: restore from last.pt, or start fresh


@dataclass
class _Progress:
    """What changes from epoch to epoch (and is restored on resume)."""

    start: int = 0
    history: History = field(default_factory=dict)
    best_metric: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, Tensor] | None = None
    resumed_from: int | None = None
    stale_dir: Path | None = None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _module_difference(module: nn.Module, state: Any) -> str | None:
    """Why ``state`` cannot load into ``module`` (names / shapes), or None."""
    if not isinstance(state, Mapping):
        return "not a state dict"
    expected = module.state_dict()
    if set(state) != set(expected):
        names = sorted(set(state) ^ set(expected))
        return f"other layers ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
    for k, v in expected.items():
        if isinstance(state[k], Tensor) and tuple(state[k].shape) != tuple(v.shape):
            return f"{k}: {tuple(state[k].shape)} in the checkpoint, {tuple(v.shape)} now"
    return None


def _mismatches(state: Mapping[str, Any], run: _Setup) -> tuple[list[str], str | None]:
    """(reasons the checkpoint cannot resume this run, a note on a changed epoch count)."""
    saved_fp = state.get("fingerprint")
    if not isinstance(saved_fp, Mapping):
        return ["no fingerprint (written by an older version of fit)"], None
    reasons = []
    for name in sorted(set(saved_fp) | set(run.fingerprint)):
        if saved_fp.get(name) == run.fingerprint.get(name):
            continue
        if name not in saved_fp or name not in run.fingerprint:
            where = "now" if name in run.fingerprint else "in the checkpoint"
            reasons.append(f"{name} (only {where})")
        else:
            reasons.append(name)
    saved_config = state.get("config") or {}
    for name in sorted(set(saved_config) | set(run.config)):  # the engine's own settings
        old, new = saved_config.get(name), run.config.get(name)
        if old != new and isinstance(old, dict) and isinstance(new, dict):  # only what differs
            keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
            old, new = {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}
        if old != new:
            reasons.append(f"fit {name} ({_short(old)} in the checkpoint, {_short(new)} now)")
    for what, module, key in (
        ("model", run.model, "model"),
        ("losses", run.criterion, "criterion"),
    ):
        why = _module_difference(module, state.get(key))
        if why is not None:
            reasons.append(f"{what} weights ({why})")
    saved_groups = [g.get("name") for g in (state.get("optimizer") or {}).get("param_groups", [])]
    groups = [g.get("name") for g in run.opt.param_groups]
    if not reasons and saved_groups != groups:
        reasons.append(f"optimizer groups ({saved_groups} in the checkpoint, {groups} now)")
    if not reasons and len(state.get("loss_optimizers", [])) != len(run.loss_opts):
        reasons.append("loss optimisers (another number of losses with their own optimiser)")

    done = int(state["epoch"])
    total = int(state.get("epochs") or (state.get("scheduler") or {}).get("epochs") or done)
    note = None
    if done > run.epochs:
        reasons.append(
            f"epochs (the checkpoint already holds {done}, more than epochs={run.epochs})"
        )
    elif total != run.epochs and run.sched.depends_on_epochs:
        reasons.append(
            f"epochs ({total} in the checkpoint, {run.epochs} now: the {run.sched.name} schedule "
            "anneals over the total number of epochs, so the rates of the epochs done would differ)"
        )
    elif total != run.epochs:
        verb = "extending" if run.epochs > total else "shortening"
        note = f"{verb} from {total} to {run.epochs} epochs"
    return reasons, note


def _move_aside(ckdir: Path) -> Path:
    """Move ``last.pt``, ``best.pt`` and ``history.csv`` to ``<ckdir>/stale/<UTC time>/``."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = ckdir / STALE_DIR / stamp
    n = 1
    while target.exists():
        target = ckdir / STALE_DIR / f"{stamp}-{n}"
        n += 1
    target.mkdir(parents=True)
    for name in (ckpt.LAST_NAME, ckpt.BEST_NAME, ckpt.HISTORY_NAME):
        if (ckdir / name).exists():
            os.replace(ckdir / name, target / name)
    return target


def _restore(state: Mapping[str, Any], run: _Setup, path: Path) -> _Progress:
    """Load weights, optimisers and progress from a matching ``last.pt`` state."""
    ckpt.load_module_state(run.model, state["model"], source=path)
    ckpt.load_module_state(run.criterion, state["criterion"], source=path, what="criterion")
    ckpt.load_optimizer_state(run.opt, state["optimizer"], source=path)
    for lo, lo_state in zip(run.loss_opts, state.get("loss_optimizers", []), strict=True):
        ckpt.load_optimizer_state(lo, lo_state, source=path)
    progress = _Progress(
        start=int(state["epoch"]),
        history={k: list(v) for k, v in state["history"].items()},
        best_metric=state.get("best_metric"),
        best_epoch=state.get("best_epoch"),
        resumed_from=int(state["epoch"]),
    )
    best_path = run.best_path
    if progress.best_epoch is not None and best_path is not None and best_path.is_file():
        best = ckpt.load_checkpoint(best_path)
        if (best.get("fingerprint"), best.get("config")) != (run.fingerprint, run.config):
            raise CheckpointError(
                f"checkpoint {best_path} belongs to other settings than {path}; move both aside "
                "or delete them to start fresh"
            )
        progress.best_state = best["model"]
        if best.get("epoch") != progress.best_epoch:
            # a crash between writing best.pt and last.pt: best.pt holds the epoch about to be
            # re-run; its weights and metric are the best so far
            progress.best_epoch, progress.best_metric = best["epoch"], best["metric"]
    return progress


def _resume(run: _Setup, *, resume: bool, on_mismatch: str) -> _Progress:
    """Continue from ``last.pt`` when it matches this run; else move it aside or refuse."""
    path, ctx, log = run.last_path, run.ctx, run.log
    if path is None or not resume or not path.is_file():
        return _Progress()
    state = ckpt.load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") not in ckpt.CHECKPOINT_FORMATS:
        raise CheckpointError(
            f"checkpoint {path} is not a fit() checkpoint (expected format "
            f"{ckpt.CHECKPOINT_FORMAT!r}); move it aside or delete it to start fresh"
        )
    reasons, note = _mismatches(state, run)
    if reasons:
        if on_mismatch == "error":
            raise CheckpointError(
                f"checkpoint {path} was written with other settings: {'; '.join(reasons)}. Use "
                "another checkpoint_dir, move the old files aside, or set on_mismatch='restart' "
                "to move them aside automatically and start fresh"
            )
        barrier(ctx)  # every rank has read last.pt before rank 0 moves it
        moved = _move_aside(run.ckdir) if ctx.is_main and run.ckdir is not None else None
        stale = broadcast_object(moved, ctx)
        if ctx.is_main:
            log.warning(
                "checkpoint %s does not match this run (%s); moved the old files to %s and "
                "starting from scratch",
                path,
                "; ".join(reasons),
                stale,
            )
        return _Progress(stale_dir=stale)
    if state.get("world_size", 1) != ctx.world_size and ctx.is_main:
        log.warning(
            "checkpoint %s was written by %d processes, resuming with %d: the data order "
            "differs from an uninterrupted run",
            path,
            state.get("world_size"),
            ctx.world_size,
        )
    progress = _restore(state, run, path)
    if ctx.is_main:
        if note:
            log.info("resuming from %s: %s", path, note)
        log.info("resuming from %s: %d of %d epochs done", path, progress.start, run.epochs)
    return progress


# ----------------------------------------------------------------------------------------------
# DDP wrapping


def _tensors(obj: Any) -> list[Tensor]:
    """Every tensor in a model output (tensors, lists / tuples, dicts, dataclasses), as DDP
    finds them."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _tensors(v)]
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in _tensors(v)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [t for f in dataclasses.fields(obj) for t in _tensors(getattr(obj, f.name))]
    return []


def _reachable(outputs: list[Tensor]) -> set[int]:
    """ids of the leaf tensors (parameters) the autograd graph of ``outputs`` reaches."""
    found: set[int] = set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    seen: set[int] = set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        variable = getattr(fn, "variable", None)  # AccumulateGrad node of a leaf
        if isinstance(variable, Tensor):
            found.add(id(variable))
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return found


@dataclass
class _Probe:
    """Trainable model parameters without gradient after one step: ``outside`` the graph of the
    forward's outputs (DDP's ``find_unused_parameters=True`` handles those) or in an output
    ``ignored`` by every loss (DDP would wait for their gradients forever)."""

    outside: list[str]
    ignored: list[str]


def _probe_gradients(run: _Setup, start: int) -> _Probe:
    """One forward + backward on the first batch of epoch ``start``, to see which parameters get
    no gradient. Weights do not change, and buffers (BatchNorm statistics), criterion buffers and
    gradients are restored, so training goes on exactly as without the probe."""
    model, criterion = run.model, run.criterion
    start_epoch(run.loader, seed=run.seed, epoch=start)
    try:
        batch = next(iter(run.loader))
    except StopIteration:
        return _Probe([], [])
    buffers = [b for m in (model, criterion) for b in m.buffers()]
    saved = [b.detach().clone() for b in buffers]
    was_training = model.training
    model.train()
    try:
        images = to_device(batch["images"], run.dev, channels_last=run.use_cl)
        pids = to_device(batch["pids"], run.dev)
        modality = batch.get("modality")
        if modality is not None:
            modality = to_device(modality, run.dev)
        cross = bool(getattr(model, "cross_modality", False))
        with autocast(run.dev, run.amp_dtype):
            output = model(images, targets=pids, modality=modality if cross else None)
        reachable = _reachable(_tensors(output))
        with fp32_region(run.dev, run.amp_dtype):
            total, _ = criterion(to_float32(output), pids, modality)
        total.backward()
        none = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        return _Probe(
            outside=[n for n, p in none if id(p) not in reachable],
            ignored=[n for n, p in none if id(p) in reachable],
        )
    finally:
        model.train(was_training)
        with torch.no_grad():
            for b, s in zip(buffers, saved, strict=True):
                b.copy_(s)
        for m in (model, criterion):
            for p in m.parameters():
                p.grad = None


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _wrap(
    run: _Setup, *, start: int, find_unused: bool | str, compile: bool
) -> tuple[nn.Module, list[nn.Parameter]]:
    """The module the loop calls: DDP around the model under torchrun, then ``torch.compile``
    when asked; and the parameters kept out of DDP (``requires_grad`` off until ``fit`` ends).

    ``find_unused="auto"`` probes one step (``_probe_gradients``): parameters outside the
    outputs' graph turn on ``find_unused_parameters``; parameters in an output that no loss uses
    (e.g. a projection head without its contrastive loss) never get a gradient in this
    configuration, so they are synchronised once from rank 0 and left out of DDP, which would
    otherwise wait for their gradients and fail."""
    train_model: nn.Module = run.model
    ctx = run.ctx
    frozen: list[nn.Parameter] = []
    if ctx.enabled:
        if find_unused == "auto" and start >= run.epochs:
            find_unused = False  # nothing left to train
        if find_unused == "auto":
            probe = _probe_gradients(run, start)
            # every rank decides alike (a rank's first batch may hold one modality only)
            probes = gather_object((probe.outside, probe.ignored), ctx)
            ignored = set.intersection(*(set(ig) for _, ig in probes))
            varying = set.union(*(set(ig) for _, ig in probes)) - ignored
            outside = sorted(set.union(*(set(out) for out, _ in probes)) | varying)
            find_unused = bool(outside)
            if ignored:
                params = dict(run.model.named_parameters())
                for name in sorted(ignored):
                    torch.distributed.broadcast(params[name].data, src=0)
                    params[name].requires_grad_(False)
                    frozen.append(params[name])
                if ctx.is_main:
                    run.log.info(
                        "DDP: %d parameter(s) are in an output no loss uses (%s); they keep "
                        "their (rank 0) values and are left out of DDP",
                        len(ignored),
                        _names(sorted(ignored)),
                    )
            if outside and ctx.is_main:
                run.log.info(
                    "DDP: %d parameter(s) get no gradient in this configuration (%s); wrapping "
                    "with find_unused_parameters=True",
                    len(outside),
                    _names(outside),
                )
        train_model = nn.parallel.DistributedDataParallel(
            run.model,
            device_ids=[run.dev.index] if run.dev.type == "cuda" else None,
            find_unused_parameters=bool(find_unused),
        )
    if compile:
        train_model = torch.compile(train_model)  # type: ignore[assignment]
    return train_model, frozen


# ----------------------------------------------------------------------------------------------
# one epoch: train, validate, save


def _train_epoch(run: _Setup, step: TrainStep, epoch: int, bar: Any, task: Any) -> dict[str, float]:
    """Train epoch ``epoch`` (0-based); returns its history row (losses, rates, speed)."""
    s = start_epoch(run.loader, seed=run.seed, epoch=epoch)
    run.sched.apply(run.opt, epoch, 0)
    lrs = {f"lr_{g['name']}": g["lr"] for o in (run.opt, *run.loss_opts) for g in o.param_groups}
    bar.reset(task, total=run.iters, description=f"epoch {epoch + 1}/{run.epochs}", info="")
    last = run.last_path
    last_good = (
        f"the last good checkpoint (end of epoch {epoch}) is kept at {last}"
        if last is not None and last.is_file()
        else "no checkpoint was written yet"
    )
    means, seen, seconds = train_epoch(
        step,
        run.loader,
        epoch=epoch,
        epochs=run.epochs,
        iters=run.iters,
        progress=bar,
        task=task,
        last_good=last_good,
        rank_seed=derive_seed(s, run.ctx.rank) if run.ctx.enabled else None,
    )
    broadcast_buffers(run.model, run.ctx)
    return {
        "epoch": epoch + 1,
        **means,
        **lrs,
        "images_per_s": seen * run.ctx.world_size / max(seconds, 1e-9),
        "time_s": seconds,
    }


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


def _validate_epoch(
    run: _Setup,
    progress: _Progress,
    row: dict[str, float],
    *,
    validate: Validate,
    select_metric: str,
    select_mode: str,
) -> bool:
    """Validate, add ``val_*`` to ``row``, keep the best weights; returns whether they improved."""
    metrics = _run_validation(validate, run.model, run.ctx, select_metric)
    row.update({f"val_{k}": v for k, v in metrics.items()})
    value = metrics[select_metric]
    best = progress.best_metric
    improved = best is None or (value > best if select_mode == "max" else value < best)
    if improved:
        progress.best_metric, progress.best_epoch = value, int(row["epoch"])
        progress.best_state = ckpt.cpu_state_dict(run.model)
    return improved


def _save_epoch(
    run: _Setup, progress: _Progress, epoch: int, *, improved: bool, select_metric: str
) -> None:
    """Rank 0 writes ``best.pt`` (when improved), ``last.pt`` and ``history.csv`` atomically."""
    if run.ckdir is None or not run.ctx.is_main:
        return
    if improved:  # best before last: a crash in between re-runs this epoch
        ckpt.atomic_save(
            {
                "model": progress.best_state,
                "epoch": epoch + 1,
                "metric": progress.best_metric,
                "select_metric": select_metric,
                "fingerprint": run.fingerprint,
                "config": run.config,
            },
            run.best_path,  # type: ignore[arg-type]
        )
    ckpt.atomic_save(
        {
            "format": ckpt.CHECKPOINT_FORMAT,
            "epoch": epoch + 1,
            "epochs": run.epochs,
            "model": run.model.state_dict(),
            "optimizer": run.opt.state_dict(),
            "loss_optimizers": [o.state_dict() for o in run.loss_opts],
            "scheduler": {**run.sched.state_dict(), "epoch": epoch + 1},
            "criterion": run.criterion.state_dict(),
            "history": progress.history,
            "best_metric": progress.best_metric,
            "best_epoch": progress.best_epoch,
            "config": run.config,
            "fingerprint": run.fingerprint,
            "world_size": run.ctx.world_size,
        },
        run.last_path,  # type: ignore[arg-type]
    )
    ckpt.atomic_write_text(to_csv(progress.history), run.ckdir / ckpt.HISTORY_NAME)


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


# ----------------------------------------------------------------------------------------------


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
    find_unused_parameters: bool | str = "auto",
    progress: bool = True,
    log: logging.Logger = logger,
    fingerprint: Mapping[str, str] | None = None,
    on_mismatch: str = "restart",
    deterministic: bool = False,
    on_epoch_end: Callable[[pd.DataFrame], None] | None = None,
    lr_scaling: str = "none",
) -> FitResult:
    """Train ``model`` on ``train_loader`` with ``criterion`` for ``epochs`` epochs
    (docs/training.md).

    ``optimizer`` / ``scheduler``: specs of ``optim.build_optimizer`` / ``optim.build_scheduler``.
    ``device``: "auto" | "cpu" | "cuda" | "cuda:N" (under torchrun "auto" / "cuda" give each rank
    cuda:LOCAL_RANK; "cuda:N" is refused there). ``precision``: "auto" (bf16 on a GPU with native
    bf16, else fp32) | "fp32" | "bf16"; the criterion always computes in fp32.
    ``channels_last``: "auto" (on for CUDA) | bool; ``compile``: wrap the training forward in
    ``torch.compile``. ``grad_clip``: max gradient norm. ``deterministic``: deterministic
    cuDNN / algorithms (warn-only) and no cuDNN autotuning. ``lr_scaling``: "none" | "linear" |
    "sqrt": multiply the main optimiser's learning rates by the number of processes (or its
    square root), since the global batch grows with it.

    ``checkpoint_dir``: where ``last.pt``, ``best.pt`` and ``history.csv`` go (None: nothing is
    written); ``resume``: continue from ``last.pt`` when present and it matches this run.
    ``fingerprint``: component name -> digest of the caller's settings ("model", "input",
    "train_data", ...), stored in every checkpoint beside the engine's own settings (seed,
    optimizer, scheduler but its epochs, grad_clip); a checkpoint resumes only when both are
    equal, its weights fit, and the epoch count allows it (more epochs resume unless the schedule
    anneals to the total, e.g. cosine).
    ``on_mismatch``: "restart" moves the old files to ``<checkpoint_dir>/stale/<UTC time>/``
    and trains from scratch (with a warning), "error" raises ``CheckpointError``.

    ``seed``: every epoch re-seeds from ``(seed, epoch)`` (under DDP the model's random draws
    from ``(seed, epoch, rank)``). ``validate(model) -> {metric: value}`` runs every
    ``val_every`` epochs and after the last one, on rank 0; the best epoch by ``select_metric``
    (``select_mode`` max or min) is kept. ``distributed``: None = DDP when launched by torchrun,
    True = required, False = off; ``find_unused_parameters``: "auto" probes one step for
    parameters without gradient, or True / False passed to DDP as given. ``progress``: rich bar
    on rank 0; ``log``: where the per-epoch line goes.
    """
    _check_args(
        epochs=epochs,
        val_every=val_every,
        grad_clip=grad_clip,
        select_mode=select_mode,
        criterion=criterion,
        validate=validate,
        fingerprint=fingerprint,
        on_mismatch=on_mismatch,
        find_unused_parameters=find_unused_parameters,
        deterministic=deterministic,
        lr_scaling=lr_scaling,
    )
    dev = resolve_device(device)
    amp_dtype = resolve_precision(precision, dev)
    use_cl = resolve_channels_last(channels_last, dev)
    ctx = setup_distributed(distributed, device=dev)
    frozen: list[nn.Parameter] = []
    try:
        with _algorithms(deterministic, dev):
            run = _setup(
                model,
                train_loader,
                criterion,
                ctx=ctx,
                dev=dev,
                amp_dtype=amp_dtype,
                use_cl=use_cl,
                epochs=epochs,
                optimizer=optimizer,
                scheduler=scheduler,
                grad_clip=grad_clip,
                seed=seed,
                fingerprint=fingerprint,
                checkpoint_dir=checkpoint_dir,
                lr_scaling=lr_scaling,
                log=log,
            )
            state = _resume(run, resume=resume, on_mismatch=on_mismatch)
            train_model, frozen = _wrap(
                run, start=state.start, find_unused=find_unused_parameters, compile=compile
            )
            step = TrainStep(
                train_model=train_model,
                criterion=criterion,
                opt=run.opt,
                loss_opts=run.loss_opts,
                sched=run.sched,
                device=dev,
                amp_dtype=amp_dtype,
                channels_last=use_cl,
                cross_modality=bool(getattr(model, "cross_modality", False)),
                grad_clip=grad_clip,
                ctx=ctx,
            )
            with make_progress(enabled=progress and ctx.is_main) as bar:
                task = add_task(bar, "train", run.iters)
                for epoch in range(state.start, epochs):
                    row = _train_epoch(run, step, epoch, bar, task)
                    improved = False
                    if validate is not None and (
                        (epoch + 1) % val_every == 0 or epoch + 1 == epochs
                    ):
                        improved = _validate_epoch(
                            run,
                            state,
                            row,
                            validate=validate,
                            select_metric=select_metric,
                            select_mode=select_mode,
                        )
                    append_row(state.history, row)
                    _save_epoch(run, state, epoch, improved=improved, select_metric=select_metric)
                    if on_epoch_end is not None and ctx.is_main:
                        on_epoch_end(to_frame(state.history))  # e.g. live metrics (DVCLive)
                    if ctx.is_main:
                        log.info(
                            "epoch %d/%d  %s",
                            epoch + 1,
                            epochs,
                            _describe(row, select_metric, improved),
                        )
            barrier(ctx)
        return FitResult(
            history=to_frame(state.history),
            state_dict=ckpt.cpu_state_dict(model),
            best_epoch=state.best_epoch,
            best_metric=state.best_metric,
            best_state_dict=state.best_state,
            best_path=run.best_path if state.best_epoch is not None else None,
            checkpoint_path=run.last_path,
            resumed_from=state.resumed_from,
            stale_dir=state.stale_dir,
        )
    finally:
        for p in frozen:
            p.requires_grad_(True)
        teardown_distributed(ctx)


__all__ = ["LR_SCALINGS", "ON_MISMATCH", "FitResult", "Validate", "fit", "lr_scale"]
