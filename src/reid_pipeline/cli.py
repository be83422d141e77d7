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


cli.add_command(
    click.Command(
        "run",
        params=list(_kedro_run.params),
        callback=_run,
        help="Run a pipeline (`--pipeline NAME` or `--pipelines A,B`; default: __default__).",
        context_settings=_kedro_run.context_settings,
    )
)


def _viz_run(**kwargs: Any) -> None:
    """Kedro-Viz's ``run``, then wait for its server process and stop it with this command:
    SIGTERM or Ctrl-C to ``kedro viz run`` no longer leaves the server listening."""
    from kedro_viz.launchers.cli import run as viz_run

    viz_run.run.callback(**kwargs)
    servers = [p for p in viz_run._VIZ_PROCESSES.values() if p.is_alive()]

    def stop(signum: int, frame: Any) -> None:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for proc in servers:
        proc.join()


def _viz_run_command() -> click.Command:
    from kedro_viz.launchers.cli.run import run as viz_run

    return click.Command(
        "run",
        params=list(viz_run.params),
        callback=_viz_run,
        help=viz_run.help,
        context_settings=viz_run.context_settings,
    )


viz_run_command = None  # built on first use (kedro-viz is imported only for `kedro viz`)


def _lazy_viz_run() -> click.Command:
    global viz_run_command  # noqa: PLW0603
    if viz_run_command is None:
        viz_run_command = _viz_run_command()
    return viz_run_command


try:
    from kedro_viz.launchers.cli.lazy_default_group import LazyDefaultGroup

    @cli.group(
        name="viz",
        cls=LazyDefaultGroup,
        lazy_subcommands={
            "run": "reid_pipeline.cli.viz_run_entry",
            "deploy": "kedro_viz.launchers.cli.deploy.deploy",
            "build": "kedro_viz.launchers.cli.build.build",
        },
        default="run",
        default_if_no_args=True,
    )
    @click.pass_context
    def viz(ctx: click.Context) -> None:
        """Visualise a Kedro pipeline using Kedro viz (its server stops with this command)."""

except ImportError:  # kedro-viz not installed: Kedro's own commands only
    pass


def __getattr__(name: str) -> Any:
    if name == "viz_run_entry":
        return _lazy_viz_run()
    raise AttributeError(name)
