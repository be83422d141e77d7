"""The training curve in DVCLive's files: one source of truth for ``dvc exp show`` (the
current epoch's values while a stage trains), ``dvc plots show`` and the project's own
training-curve figure (docs/kedro_dvc.md, "Live metrics").

A history row (``epoch``, ``loss``, ``loss_<term>``, ``lr_<group>``, ``images_per_s``,
``time_s``, ``val_<metric>``) maps to DVCLive metrics ``train/loss``, ``train/loss_<term>``,
``lr/<group>``, ``speed/images_per_s``, ``speed/time_s``, ``val/<metric>`` at step ``epoch``.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd

_SPEED = ("images_per_s", "time_s")


def metric_name(column: str) -> str:
    if column.startswith("lr_"):
        return f"lr/{column[3:]}"
    if column.startswith("val_"):
        return f"val/{column[4:]}"
    if column in _SPEED:
        return f"speed/{column}"
    return f"train/{column}"


def column_name(metric: str) -> str:
    group, name = metric.split("/", 1)
    return {"lr": f"lr_{name}", "val": f"val_{name}"}.get(group, name)


def _existing_dvc_repo() -> Any:
    """The DVC repository around the working directory, or None (never ``dvc init``)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo
    from dvc.scm import SCMError

    try:
        return Repo()
    except (NotDvcRepoError, SCMError):
        return None


def write_history(directory: str | os.PathLike[str], history: pd.DataFrame) -> None:
    """Write ``history`` (one row per epoch) as DVCLive metrics under ``directory``: the
    ``metrics.json`` summary holds the last epoch, ``plots/metrics/**.tsv`` every epoch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dvclive's optional GPU monitor imports pynvml
        import dvclive.live
        from dvclive import Live

    # DVCLive looks for the DVC repository around the working directory and, inside a git
    # repository without one, runs `dvc init` there; logging files is all this needs, so an
    # existing DVC repository is used (`dvc exp show` while a stage trains) and none is created
    with (
        mock.patch.object(dvclive.live, "get_dvc_repo", _existing_dvc_repo),
        Live(str(directory), resume=False, dvcyaml=None, save_dvc_exp=False, report=None) as live,
    ):
        for row in history.to_dict("records"):
            live.step = int(row["epoch"])
            for column, value in row.items():
                if column == "epoch" or value is None or math.isnan(float(value)):
                    continue
                live.log_metric(metric_name(column), float(value))
            live.make_summary()


def read_history(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """The history ``write_history`` wrote: one row per epoch, NaN where an epoch has no value
    (e.g. no validation that epoch)."""
    root = Path(directory) / "plots" / "metrics"
    if not root.is_dir():
        raise FileNotFoundError(f"no DVCLive metrics under {root}")
    frame: pd.DataFrame | None = None
    for tsv in sorted(root.rglob("*.tsv")):
        metric = tsv.relative_to(root).with_suffix("").as_posix()
        part = pd.read_csv(tsv, sep="\t")
        part = part.rename(columns={"step": "epoch", part.columns[-1]: column_name(metric)})
        part = part[["epoch", column_name(metric)]]
        frame = part if frame is None else frame.merge(part, on="epoch", how="outer")
    if frame is None:
        raise FileNotFoundError(f"no DVCLive metrics under {root}")
    return frame.sort_values("epoch").reset_index(drop=True).astype({"epoch": "int64"})
