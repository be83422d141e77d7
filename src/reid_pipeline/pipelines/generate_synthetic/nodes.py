"""Write each configured synthetic dataset into ``data/01_raw`` in its real layout."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from reid_pipeline.data import generate_synthetic, load_dataset
from reid_pipeline.data.stats import format_statistics, split_statistics

logger = logging.getLogger(__name__)


def generate_datasets(root: str, datasets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``datasets``: ``[{layout: market1501, preset: default, seed: 0, ...options}, ...]``.

    Existing folders are replaced (DVC removes a stage's outputs before running it anyway).
    Returns a JSON-able report: folder, seconds and split statistics per dataset."""
    if not datasets:
        raise ValueError("generate_synthetic.datasets: the list is empty")
    report: dict[str, Any] = {}
    for i, entry in enumerate(datasets):
        options = dict(entry)
        layout = options.pop("layout", None)
        if not isinstance(layout, str):
            raise ValueError(f"generate_synthetic.datasets[{i}]: missing 'layout' (a string)")
        start = time.perf_counter()
        folder = generate_synthetic(root, layout, overwrite=True, **options)
        seconds = time.perf_counter() - start
        load_options = {"version": options["version"]} if "version" in options else {}
        splits = load_dataset(layout, folder, **load_options)
        table = split_statistics(splits)
        logger.info("%s\n%s", folder, format_statistics(f"synthetic {layout}", table))
        report[layout] = {
            "folder": str(folder),
            "seconds": round(seconds, 2),
            "options": options,
            "statistics": table.to_dict("records"),
        }
    return report
