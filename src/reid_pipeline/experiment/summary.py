"""What a run reports: ``metrics.json`` (the DVC metrics file), the CMC table for DVC plots, and
the console table of the trained model beside the untrained one. The one place for tables and
console output of a training run."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

logger = logging.getLogger(__name__)

HEADLINE_KEYS = ("R1", "R5", "R10", "R20", "mAP", "mINP")


def headline(protocol_result: Mapping[str, Any]) -> dict[str, Any]:
    """The one setting a run is summarised by (the first setting of the protocol result)."""
    settings = protocol_result["settings"]
    name = next(iter(settings))
    values = settings[name]["mean"]
    return {"protocol": name, **{k: float(values[k]) for k in HEADLINE_KEYS if k in values}}


def metrics_document(
    evaluation: Mapping[str, Any],
    untrained: Mapping[str, Any],
    spec: Mapping[str, Any],
    training: Mapping[str, Any],
    info: Mapping[str, Any],
    *,
    run_id: str,
) -> dict[str, Any]:
    """``metrics.json``: headline of the trained and the untrained model, every protocol setting,
    model size, training summary; ``run_id`` is the run that scored, ``model.run_id`` the run
    that trained the weights scored (the report checks it against ``model_spec.json``)."""
    return {
        "run_id": run_id,
        "architecture": spec.get("arch", spec["name"]),
        "recipe": spec.get("recipe"),
        "dataset": info["dataset"],
        "synthetic": bool(info.get("synthetic", False)),
        "trained": headline(evaluation),
        "untrained": headline(untrained),
        "protocols": dict(evaluation),
        "model": {k: spec[k] for k in ("params", "feat_dim", "num_classes")}
        | {
            "backbone": spec["kwargs"].get("backbone", "resnet50"),
            "run_id": spec.get("run_id", ""),
            "weights_sha256": spec.get("weights_sha256", ""),
        },
        "training": dict(training),
    }


def cmc_table(evaluation: Mapping[str, Any], untrained: Mapping[str, Any]) -> pd.DataFrame:
    """CMC of the headline setting, trained vs untrained (one row per rank)."""
    first = next(iter(evaluation["settings"]))
    trained_cmc = evaluation["settings"][first]["cmc"]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(trained_cmc) + 1),
            "trained": trained_cmc,
            "untrained": untrained["settings"][first]["cmc"],
        }
    )


def print_comparison(metrics: Mapping[str, Any]) -> None:
    """The trained model beside the untrained one, as a console table and one log line."""
    trained, untrained = metrics["trained"], metrics["untrained"]
    name, dataset = metrics["architecture"], metrics["dataset"]
    table = Table(title=f"{name} on {dataset} ({trained['protocol']})")
    table.add_column("model")
    for key in HEADLINE_KEYS:
        table.add_column(key, justify="right")
    for label, head in (("untrained", untrained), ("trained", trained)):
        table.add_row(label, *[f"{100 * head[k]:.1f}" if k in head else "-" for k in HEADLINE_KEYS])
    Console().print(table)
    logger.info(
        "%s: trained R1 %.1f / mAP %.1f / mINP %.1f vs untrained R1 %.1f / mAP %.1f / mINP %.1f",
        name,
        *(100 * trained[k] for k in ("R1", "mAP", "mINP")),
        *(100 * untrained[k] for k in ("R1", "mAP", "mINP")),
    )
