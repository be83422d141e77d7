"""Ingestion: parse and validate a raw dataset folder, write manifests and statistics."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from reid_pipeline.data import generate_synthetic, load_dataset, records_to_frame
from reid_pipeline.data.records import Record
from reid_pipeline.data.stats import format_statistics, split_statistics
from reid_pipeline.data.synthetic import resolve_options

logger = logging.getLogger(__name__)

_DATASET_KEYS = {"name", "root", "options", "synthetic", "protocol"}  # protocol: for evaluation


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


def ensure_synthetic(name: str, root: str, synthetic: Mapping[str, Any]) -> None:
    """Generate the synthetic dataset ``name`` under ``root`` if its folder is missing."""
    options = dict(synthetic)
    folder = (
        Path(root)
        / resolve_options(
            name, **{k: v for k, v in options.items() if k in ("preset", "seed", "version")}
        ).folder
    )
    if folder.is_dir():
        return
    logger.info("%s is missing: generating the synthetic %s dataset (%s)", folder, name, options)
    generate_synthetic(root, name, **options)


def select_dataset(slot: str, datasets: Mapping[str, Any]) -> dict[str, Any]:
    """The entry ``slot`` (``single_modality`` / ``cross_modality``) of ``datasets``."""
    if slot not in datasets:
        raise ValueError(f"ingest.dataset_slot: expected one of {sorted(datasets)}, got {slot!r}")
    return dict(datasets[slot])


def ingest_dataset(
    dataset: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """``dataset``: ``{name, root, options: {...load_dataset options}, synthetic: {...} | null}``.

    With ``synthetic`` set (the embedded default) a missing folder is generated first; real-data
    environments set it to null, so a missing download is an error naming the folder."""
    extra = sorted(set(dataset) - _DATASET_KEYS)
    if extra:
        raise ValueError(f"dataset: unknown key(s) {extra}; expected {sorted(_DATASET_KEYS)}")
    name, root = dataset.get("name"), dataset.get("root")
    if not isinstance(name, str) or not isinstance(root, str):
        raise ValueError(f"dataset.name and dataset.root must be strings, got {name!r}, {root!r}")
    if dataset.get("synthetic"):
        ensure_synthetic(name, root, dataset["synthetic"])
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
