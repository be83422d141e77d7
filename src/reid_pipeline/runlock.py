"""One run at a time per architecture's outputs: an exclusive ``flock`` on
``data/.locks/<name>.lock``, held for the whole run. The kernel releases it on any exit (a
``kill -9`` included), so a stale lock file from a killed run never blocks the next one; the
file only says who holds it. Re-entrant within a process (``python -m reid_pipeline.ddp`` holds
the lock across the sessions it runs)."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import IO

from reid_pipeline.errors import RunLockedError

LOCK_DIR = Path("data") / ".locks"
_held: dict[str, tuple[IO[str], int]] = {}


def acquire(name: str, *, run_id: str = "", root: Path | None = None) -> Path:
    """Lock ``name`` for this process or raise ``RunLockedError`` naming the holder."""
    path = (root or Path.cwd()) / LOCK_DIR / f"{name}.lock"
    key = str(path.resolve()) if path.exists() else str(path)
    if key in _held:
        handle, count = _held[key]
        _held[key] = (handle, count + 1)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the run
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        try:
            info = json.loads(holder)
            who = (
                f"run {info.get('run_id', '?')} (pid {info.get('pid', '?')}, started "
                f"{info.get('started', '?')}: {info.get('command', '?')})"
            )
        except ValueError:
            who = "another run"
        raise RunLockedError(
            f"{who} is writing the {name} outputs; wait for it to finish or stop it, then run "
            f"again (lock: {path})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(
        json.dumps(
            {
                "run_id": run_id,
                "pid": os.getpid(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200],
            }
        )
    )
    handle.flush()
    _held[str(path.resolve())] = (handle, 1)
    return path


def release(name: str, *, root: Path | None = None) -> None:
    path = (root or Path.cwd()) / LOCK_DIR / f"{name}.lock"
    key = str(path.resolve())
    if key not in _held:
        return
    handle, count = _held[key]
    if count > 1:
        _held[key] = (handle, count - 1)
        return
    del _held[key]
    handle.close()  # closing the descriptor releases the flock


def held() -> list[str]:
    return sorted(Path(k).stem for k in _held)
