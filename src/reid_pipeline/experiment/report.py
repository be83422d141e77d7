"""The report table: each architecture's ``metrics.json`` as one row, rendered as Markdown."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

_COLUMNS = [
    ("architecture", "architecture"),
    ("dataset", "dataset"),
    ("protocol", "protocol"),
    ("R1", "R1 (%)"),
    ("mAP", "mAP (%)"),
    ("mINP", "mINP (%)"),
    ("untrained_R1", "untrained R1 (%)"),
    ("untrained_mAP", "untrained mAP (%)"),
    ("params_M", "params (M)"),
    ("images_seen", "images seen"),
    ("train_seconds", "training time (s)"),
    ("images_per_s", "train images/s"),
]


def _row(key: str, m: Any) -> dict[str, Any]:
    """One table row from the metrics of partition ``key`` (``<arch>/``)."""
    where = f"report: {key}metrics.json"
    if not isinstance(m, dict) or not isinstance(m.get("trained"), dict):
        raise ValueError(f"{where}: expected a JSON object with a 'trained' block (R1, mAP, mINP)")
    head, untrained = m["trained"], m.get("untrained") or {}
    missing = [k for k in ("R1", "mAP", "mINP") if not isinstance(head.get(k), int | float)]
    if missing:
        raise ValueError(f"{where}: 'trained' has no number for {missing}")
    model, training = m.get("model") or {}, m.get("training") or {}

    def number(block: dict[str, Any], name: str, scale: float = 1.0) -> float:
        value = block.get(name)
        return scale * float(value) if isinstance(value, int | float) else np.nan

    return {
        "architecture": key.split("/", maxsplit=1)[0],
        "dataset": m.get("dataset", "?"),
        "protocol": head.get("protocol", ""),
        "R1": 100 * head["R1"],
        "mAP": 100 * head["mAP"],
        "mINP": 100 * head["mINP"],
        "untrained_R1": number(untrained, "R1", 100.0),
        "untrained_mAP": number(untrained, "mAP", 100.0),
        "params_M": number(model, "params", 1e-6),
        "images_seen": number(training, "images_seen"),
        "train_seconds": number(training, "seconds"),
        "images_per_s": number(training, "images_per_s"),
    }


def is_stale(key: str, metrics: Any, specs: dict[str, Callable[[], Any]] | None) -> bool:
    """True when ``<arch>/metrics.json`` scored other weights than those now in
    ``data/06_models/<arch>`` (their ``model_spec.json`` names another training run)."""
    arch = key.split("/", maxsplit=1)[0]
    spec_key = next((k for k in (specs or {}) if k.split("/", maxsplit=1)[0] == arch), None)
    if spec_key is None or not isinstance(metrics, dict):
        return False
    scored = (metrics.get("model") or {}).get("run_id")
    trained = (specs[spec_key]() or {}).get("run_id")  # type: ignore[index]
    if scored == trained:
        return False
    logger.warning(
        "report: left out %s: data/08_reporting/%s/metrics.json scored the model of run %s, but "
        "data/06_models/%s holds the model of run %s; re-score it with `kedro run "
        "--pipeline=train_%s --from-nodes=%s.extract_embeddings`",
        arch,
        arch,
        scored or "(unknown)",
        arch,
        trained or "(unknown)",
        arch,
        arch,
    )
    return True


def collect_metrics(
    partitions: dict[str, Callable[[], Any]],
    order: list[str],
    specs: dict[str, Callable[[], Any]] | None = None,
) -> pd.DataFrame:
    """One row per architecture from the ``<arch>/metrics.json`` partitions that exist: R1 /
    mAP / mINP of the trained and the untrained model (percent), parameters (millions),
    training time (s) and training throughput (images/s); rows in ``order``, then the others
    alphabetically. With ``specs`` (the ``<arch>/model_spec.json`` partitions), metrics that
    scored another run's weights than the ones on disk are left out with a warning."""
    loaded = {key: partitions[key]() for key in sorted(partitions)}
    rows = [_row(key, m) for key, m in loaded.items() if not is_stale(key, m, specs)]
    if not rows:
        raise ValueError(
            "report: no data/08_reporting/<architecture>/metrics.json found; run a training "
            "pipeline first (e.g. `kedro run --pipeline=train_dimn`)"
        )
    rank = {a: i for i, a in enumerate(order)}
    table = pd.DataFrame(rows)
    table["_order"] = table["architecture"].map(lambda a: rank.get(a, len(rank)))
    return (
        table.sort_values(["_order", "architecture"]).drop(columns="_order").reset_index(drop=True)
    )


def budget_notes(table: pd.DataFrame) -> list[str]:
    """One sentence per dataset: whether its architectures trained on the same budget (images
    seen), the condition for comparing their rows."""
    notes = []
    for dataset, rows in table.groupby("dataset", sort=False):
        seen = {r["architecture"]: r["images_seen"] for r in rows.to_dict("records")}
        known = {a: int(v) for a, v in seen.items() if isinstance(v, float) and not np.isnan(v)}
        names = ", ".join(seen)
        if len(known) < len(seen):
            unknown = ", ".join(a for a in seen if a not in known)
            notes.append(f"{dataset}: images seen not recorded for {unknown} (an older run).")
        elif len(set(known.values())) == 1:
            count = next(iter(known.values()))
            notes.append(
                f"{dataset}: equal budget, every architecture ({names}) saw {count:,} training "
                "images."
            )
        else:
            listed = ", ".join(f"{a} {v:,}" for a, v in known.items())
            notes.append(
                f"{dataset}: **unequal budgets** (images seen: {listed}); compare these rows "
                "with care."
            )
    return notes


def render_table(table: pd.DataFrame) -> str:
    """The table as Markdown (numbers with one decimal, images seen as a count), then whether
    each dataset's architectures had the same budget."""
    header = "| " + " | ".join(title for _, title in _COLUMNS) + " |"
    sep = (
        "|"
        + "|".join(
            "---" if k in ("architecture", "dataset", "protocol") else "---:" for k, _ in _COLUMNS
        )
        + "|"
    )
    lines = ["# Results side by side", "", header, sep]
    for row in table.to_dict("records"):
        cells = []
        for key, _ in _COLUMNS:
            v = row[key]
            if isinstance(v, float) and np.isnan(v):
                cells.append("-")
            elif key == "images_seen":
                cells.append(f"{int(v):,}")
            else:
                cells.append(f"{v:.1f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Untrained = the same architecture with its initial weights, evaluated on the same split.",
        "",
        *budget_notes(table),
    ]
    text = "\n".join(lines) + "\n"
    logger.info("\n%s", text)
    return text
