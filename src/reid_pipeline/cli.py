"""Project CLI: Kedro loads ``<package>.cli`` and its commands override the built-in ones.

``kedro run --pipeline=NAME`` is this product's documented command. Kedro 1.x deprecated the
singular option in favour of ``--pipelines``; this ``run`` accepts both (same options as Kedro's
own ``run``) and passes ``--pipeline`` on as a one-element ``--pipelines`` without the warning.

Known user errors (``reid_pipeline.errors.ReidError``: a bad parameter or dataset, a corrupt
checkpoint, a full disk, a run already in progress) end the command with one line naming the
file or key and what to do, and exit code 1; ``REID_TRACEBACK=1`` shows the traceback instead.
SIGTERM and Ctrl-C stop the run with a line saying that the last checkpoint is kept and that the
same command resumes from it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click
from kedro.framework.cli.project import run as _kedro_run
from kedro.framework.cli.utils import KedroCliError

from reid_pipeline.errors import ReidError

logger = logging.getLogger("reid_pipeline")

RESUME_HINT = (
    "the last complete epoch's checkpoint (data/06_models/<arch>/checkpoints/last.pt) is kept; "
    "run the same command again to resume from it"
)


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM, turned into the same path as Ctrl-C."""


def known_error(exc: BaseException) -> ReidError | None:
    """The ``ReidError`` behind ``exc`` (Kedro wraps errors raised while saving a dataset)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ReidError):
            return exc
        seen.add(id(exc))
        if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
            from reid_pipeline.errors import DiskFullError

            return DiskFullError(
                f"no space left on device ({exc}); free some space and run the same command "
                "again: files written before stay intact"
            )
        exc = exc.__cause__ or exc.__context__
    return None


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``func`` with the one-line error reporting and signal handling described above."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        def on_term(signum: int, frame: Any) -> None:
            raise RunInterrupted

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt as exc:
            what = "terminated (SIGTERM)" if isinstance(exc, RunInterrupted) else "interrupted"
            click.echo(f"reid_pipeline: {what}: {RESUME_HINT}", err=True)
            sys.exit(143 if isinstance(exc, RunInterrupted) else 130)
        except Exception as exc:
            known = known_error(exc)
            if known is None or os.environ.get("REID_TRACEBACK"):
                raise
            click.echo(f"error: {known}", err=True)
            sys.exit(1)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


@click.group(name="reid_pipeline")
def cli() -> None:
    """reid_pipeline project commands."""


def _run(**kwargs: Any) -> Any:
    pipeline = kwargs.pop("pipeline", None)
    if pipeline:
        if kwargs.get("pipelines"):
            raise KedroCliError("Options '--pipeline' and '--pipelines' cannot be used together")
        kwargs["pipelines"] = [pipeline]
    return guarded(_kedro_run.callback)(pipeline=None, **kwargs)


#: module-level as well: Kedro's ``find_run_command`` (``python -m reid_pipeline``) looks for it
run = click.Command(
    "run",
    params=list(_kedro_run.params),
    callback=_run,
    help="Run a pipeline (`--pipeline NAME` or `--pipelines A,B`; default: __default__).",
    context_settings=_kedro_run.context_settings,
)
cli.add_command(run)


def stop_children_on_term() -> None:
    """``kedro viz run`` serves from a child process and leaves it listening when the command
    itself is stopped with SIGTERM (Kedro-Viz is a global Kedro command, which a project cannot
    replace). This handler, installed when this module is loaded for ``kedro viz``, stops the
    child processes first."""
    import multiprocessing

    def handler(signum: int, frame: Any) -> None:
        children = multiprocessing.active_children()
        for child in children:
            child.terminate()
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


if os.path.basename(sys.argv[0]) == "kedro" and sys.argv[1:2] == ["viz"]:
    stop_children_on_term()
