"""Atomic checkpoint files, weights-only loading and compatibility checks.

Writes go to a temporary file in the target's folder, are flushed and ``fsync``-ed, then
``os.replace``-d over the target (atomic on POSIX and Windows), and the folder is ``fsync``-ed:
a crash (or ``kill -9``) at any moment leaves either the previous file or the new one, never a
truncated mix. Every read uses ``torch.load(..., weights_only=True)``: checkpoints hold only
tensors and plain containers (no pickled objects), so loading one can never run code.

Layout written by ``fit`` in its ``checkpoint_dir``:

- ``last.pt``: ``{"format", "epoch" (completed epochs), "epochs" (the run's total), "model",
  "optimizer", "loss_optimizers", "scheduler", "criterion", "history" (column -> list),
  "best_metric", "best_epoch", "config", "fingerprint", "world_size"}``.
- ``best.pt``: ``{"model", "epoch", "metric", "select_metric", "fingerprint", "config"}`` (the
  best validated weights).
- ``history.csv``: the training curve, one row per epoch.

Errors a user can act on are one line (``reid_pipeline.errors``): a truncated or corrupt file is a
``CheckpointError`` naming the file and what to do; a full disk while writing is a
``DiskFullError`` (the previous file is intact). See docs/training.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from reid_pipeline.errors import CheckpointError, DiskFullError

__all__ = [
    "BEST_NAME",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMATS",
    "HISTORY_NAME",
    "LAST_NAME",
    "CheckpointError",
    "DiskFullError",
    "atomic_save",
    "atomic_write_text",
    "check_state_dict",
    "cpu_state_dict",
    "load_checkpoint",
    "load_module_state",
    "load_optimizer_state",
]

CHECKPOINT_FORMAT = "reid_pipeline.fit/2"  # /2: with "fingerprint" and "epochs"
CHECKPOINT_FORMATS = ("reid_pipeline.fit/1", CHECKPOINT_FORMAT)  # read (/1 never resumes)
LAST_NAME = "last.pt"
BEST_NAME = "best.pt"
HISTORY_NAME = "history.csv"


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is "no space left" / "quota"."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _DISK_FULL:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every OS / filesystem
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: str | Path, write: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if _disk_full(exc):
            full = DiskFullError(
                f"No space left on device while writing {path}; free space and run the same "
                "command again (the previous checkpoint is intact)"
            )
            full.errno = errno.ENOSPC
            raise full from None
        raise
    _fsync_dir(path.parent)
    return path


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file + fsync + ``os.replace``)."""
    return _atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return _atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> Any:
    """Read a file written by ``atomic_save`` with ``weights_only=True``.

    A missing file is ``FileNotFoundError``; a truncated or corrupt one, or one holding anything
    but tensors and plain containers, is a one-line ``CheckpointError`` naming the file and what
    to do (never torch's long message)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():  # a pickled class, not a broken file
            raise CheckpointError(
                f"checkpoint {path} holds objects other than tensors and plain containers and "
                "cannot be loaded with weights_only=True; it was not written by this project. "
                "Move it aside or delete it to start fresh"
            ) from None
        reason = "truncated or corrupt"
    except (EOFError, RuntimeError, ValueError, OSError, KeyError, IndexError) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
            raise CheckpointError(
                f"cannot read checkpoint {path}: permission denied; make it readable"
            ) from None
        reason = "truncated" if isinstance(exc, EOFError) else "truncated or corrupt"
    raise CheckpointError(
        f"checkpoint {path} is {reason} and cannot be read (an interrupted copy, a full disk or "
        "a crash outside this program); move it aside or delete it to start fresh"
    )


def cpu_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of ``module.state_dict()`` (safe to keep while training goes on)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def check_state_dict(
    module: nn.Module, state: Mapping[str, Tensor], *, source: str | Path, what: str = "model"
) -> None:
    """Raise ``CheckpointError`` naming ``source`` unless ``state`` has exactly ``module``'s keys
    and shapes (a checkpoint from another configuration)."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {source}: '{what}' is not a state dict")
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs {what} {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and isinstance(state[k], Tensor) and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"shape mismatch {mismatched[:5]}")
        if missing:
            parts.append(f"missing keys {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}")
        raise CheckpointError(
            f"checkpoint {source} was written for a different {what} configuration: "
            + "; ".join(parts)
            + ". Use another checkpoint_dir, or resume=False to start over."
        )


def load_module_state(
    module: nn.Module, state: Mapping[str, Tensor], *, source: str | Path, what: str = "model"
) -> None:
    """``check_state_dict`` then ``module.load_state_dict(state, strict=True)``."""
    check_state_dict(module, state, source=source, what=what)
    module.load_state_dict(state, strict=True)


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, state: Mapping[str, Any], *, source: str | Path
) -> None:
    """Load an optimiser state, turning group / size mismatches into one error naming the file."""
    if not isinstance(state, Mapping) or "param_groups" not in state:
        raise CheckpointError(f"checkpoint {source}: 'optimizer' is not an optimiser state")
    saved = [g.get("name") for g in state["param_groups"]]
    current = [g.get("name") for g in optimizer.param_groups]
    if saved != current:
        raise CheckpointError(
            f"checkpoint {source} has optimiser groups {saved}, the current configuration "
            f"{current}. Use another checkpoint_dir, or resume=False to start over."
        )
    try:
        optimizer.load_state_dict(dict(state))
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {source}: optimiser state does not fit the current parameters ({exc})"
        ) from None
