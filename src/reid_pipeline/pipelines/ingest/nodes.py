"""Ingestion: parse and validate a raw dataset folder, write manifests and statistics."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from reid_pipeline.data import load_dataset, records_to_frame
from reid_pipeline.data.records import Record
from reid_pipeline.data.stats import format_statistics, split_statistics
from reid_pipeline.data.synthetic import ensure_synthetic
from reid_pipeline.errors import ConfigError
from reid_pipeline.experiment.recipe import parse_dataset

logger = logging.getLogger(__name__)


def _relative(records: list[Record]) -> list[Record]:
    """Paths under the project (the working directory) are stored relative to it, so manifests
    and DVC outputs do not depend on where the project was cloned."""
    here = Path.cwd()
    out = []
    for r in records:
        path = Path(r.path)
        try:
            out.append(r._replace(path=os.fspath(path.relative_to(here))))
        except ValueError:
            out.append(r)
    return out


def select_dataset(slot: str, datasets: Mapping[str, Any]) -> dict[str, Any]:
    """The entry ``slot`` (``single_modality`` / ``cross_modality``) of ``datasets``."""
    if slot not in datasets:
        raise ConfigError(f"ingest.dataset_slot: expected one of {sorted(datasets)}, got {slot!r}")
    return parse_dataset(f"datasets.{slot}", datasets[slot]).as_dict()


def ingest_dataset(
    dataset: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """``dataset``: ``{name, root, options: {...load_dataset options}, synthetic: {...} | null}``.

    With ``synthetic`` set (the embedded default) a missing folder is generated first, and a
    folder generated with other options is regenerated (never silently reused); real-data
    environments set it to null, so a missing download is an error naming the folder."""
    spec = parse_dataset("dataset", {k: v for k, v in dataset.items() if k != "protocol"})
    name, root = spec.name, spec.root
    if spec.synthetic:
        ensure_synthetic(root, name, spec.synthetic)
    splits = load_dataset(name, root, **dict(dataset.get("options") or {}))
    stats = split_statistics(splits)
    logger.info("\n%s", format_statistics(name, stats))
    info = {**splits.info, "synthetic": bool(dataset.get("synthetic"))}
    return (
        records_to_frame(_relative(splits.train)),
        records_to_frame(_relative(splits.query)),
        records_to_frame(_relative(splits.gallery)),
        info,
        stats,
    )
