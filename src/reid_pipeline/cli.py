"""Project CLI: Kedro loads ``<package>.cli`` and its commands override the built-in ones.

``kedro run --pipeline=NAME`` is this product's documented command. Kedro 1.x deprecated the
singular option in favour of ``--pipelines``; this ``run`` accepts both (same options as Kedro's
own ``run``) and passes ``--pipeline`` on as a one-element ``--pipelines`` without the warning.
"""

from __future__ import annotations

from typing import Any

import click
from kedro.framework.cli.project import run as _kedro_run
from kedro.framework.cli.utils import KedroCliError


@click.group(name="reid_pipeline")
def cli() -> None:
    """reid_pipeline project commands."""


def _run(**kwargs: Any) -> Any:
    pipeline = kwargs.pop("pipeline", None)
    if pipeline:
        if kwargs.get("pipelines"):
            raise KedroCliError("Options '--pipeline' and '--pipelines' cannot be used together")
        kwargs["pipelines"] = [pipeline]
    return _kedro_run.callback(pipeline=None, **kwargs)


cli.add_command(
    click.Command(
        "run",
        params=list(_kedro_run.params),
        callback=_run,
        help="Run a pipeline (`--pipeline NAME` or `--pipelines A,B`; default: __default__).",
        context_settings=_kedro_run.context_settings,
    )
)
