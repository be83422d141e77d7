"""Thin Kedro nodes of the train template: unpack parameters, call the library, return values
for the catalog. Everything heavy lives in ``reid_pipeline.experiment``."""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from reid_pipeline.data.holdout import holdout_split
from reid_pipeline.data.records import frame_to_records, records_to_frame
from reid_pipeline.evaluation import evaluate_protocol
from reid_pipeline.experiment import (
    ExperimentConfig,
    embed_records,
    parse_config,
    select_experiment,
)
from reid_pipeline.experiment.run import (
    HEADLINE_KEYS,
    VISIBLE_INFRARED,
    dry_run,
    headline,
    is_cross_modality,
    rebuild_model,
    train_from_records,
)
from reid_pipeline.viz.cmc import plot_cmc
from reid_pipeline.viz.curves import plot_training_curves
from reid_pipeline.viz.embedding import plot_embedding_map
from reid_pipeline.viz.ranklist import plot_rank_list

logger = logging.getLogger(__name__)


def _config(config: dict[str, Any]) -> ExperimentConfig:
    return ExperimentConfig(**config)


def check_parameters(
    block: dict[str, Any],
    recipe: str,
    datasets: dict[str, Any],
    protocols: dict[str, Any],
    arch: str = "experiment",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Select the recipe, then validate the parameters before anything is read or trained.

    Messages name the key as it is written in the parameters file (``dimn.cpu_synthetic.sampler``);
    ``arch`` is the name of the parameter block (the pipeline's namespace).
    """
    params = select_experiment(
        block, recipe=recipe, datasets=datasets, protocols=protocols, name=arch
    )
    config = parse_config(params, name=f"{arch}.{recipe}")
    dry_run(config, cross_modality=config.dataset["name"] in VISIBLE_INFRARED)
    return asdict(config), config.dataset


def checker(arch: str):
    """``check_parameters`` bound to the parameter block ``arch``; keeps its name for Kedro-Viz."""
    bound = functools.partial(check_parameters, arch=arch)
    functools.update_wrapper(bound, check_parameters)
    return bound


def split_validation(
    train_manifest: pd.DataFrame, config: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Hold ``validation.num_ids`` training identities out for model selection."""
    cfg = _config(config)
    records = frame_to_records(train_manifest)
    split = holdout_split(
        records,
        num_ids=int(cfg.validation.get("num_ids", 0)),
        seed=cfg.seed,
        cross_modality=is_cross_modality(records),
    )
    return (
        records_to_frame(split.train),
        records_to_frame(split.query),
        records_to_frame(split.gallery),
    )


def train_model(
    fit_manifest: pd.DataFrame,
    val_query_manifest: pd.DataFrame,
    val_gallery_manifest: pd.DataFrame,
    config: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any], pd.DataFrame, dict[str, Any]]:
    outcome = train_from_records(
        frame_to_records(fit_manifest),
        frame_to_records(val_query_manifest),
        frame_to_records(val_gallery_manifest),
        _config(config),
    )
    return outcome.state_dict, outcome.spec, outcome.history, outcome.summary


def plot_training(history: pd.DataFrame, spec: dict[str, Any]) -> Figure:
    return plot_training_curves(history, title=f"{spec['name']} training")


def _embed(
    state: dict[str, torch.Tensor] | None,
    spec: dict[str, Any],
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    config: dict[str, Any],
) -> dict[str, torch.Tensor]:
    cfg = _config(config)
    model = rebuild_model(spec, state)
    out: dict[str, torch.Tensor] = {}
    for prefix, manifest in (("query", query_manifest), ("gallery", gallery_manifest)):
        feats = embed_records(model, frame_to_records(manifest), cfg)
        out |= {
            f"{prefix}_feats": feats.feats,
            f"{prefix}_pids": feats.pids,
            f"{prefix}_camids": feats.camids,
            f"{prefix}_modality": feats.modality,
        }
    return out


def extract_embeddings(
    weights: dict[str, torch.Tensor],
    spec: dict[str, Any],
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    config: dict[str, Any],
) -> dict[str, torch.Tensor]:
    """Query and gallery embeddings of the trained model (test transform, optional flip)."""
    return _embed(weights, spec, query_manifest, gallery_manifest, config)


def extract_untrained_embeddings(
    spec: dict[str, Any],
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    config: dict[str, Any],
) -> dict[str, torch.Tensor]:
    """The same for the untrained model (the initial weights training started from)."""
    return _embed(None, spec, query_manifest, gallery_manifest, config)


def _protocol(
    embeddings: dict[str, torch.Tensor],
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    info: dict[str, Any],
    cfg: ExperimentConfig,
) -> Any:
    evaluation = cfg.evaluation
    # protocol options: the dataset's (e.g. SYSU-MM01's permutation file) then the experiment's
    options = dict(cfg.dataset.get("protocol") or {}) | dict(evaluation.get("protocol") or {})
    return evaluate_protocol(
        info["dataset"],
        embeddings["query_feats"],
        embeddings["gallery_feats"],
        frame_to_records(query_manifest),
        frame_to_records(gallery_manifest),
        info,
        metric=evaluation.get("metric", "cosine"),
        rerank=bool(evaluation.get("rerank", False)),
        max_rank=int(evaluation.get("max_rank", 50)),
        **options,
    )


def evaluate(
    embeddings: dict[str, torch.Tensor],
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    info: dict[str, Any],
    config: dict[str, Any],
) -> tuple[dict[str, Any], Figure, Figure]:
    """The dataset's protocol (every setting), a rank list and an embedding map."""
    cfg = _config(config)
    result = _protocol(embeddings, query_manifest, gallery_manifest, info, cfg)
    logger.info("%s on %s:\n%s", cfg.model_name, info["dataset"], result.table())
    query = frame_to_records(query_manifest)
    gallery = frame_to_records(gallery_manifest)
    q = torch.nn.functional.normalize(embeddings["query_feats"].float(), dim=1)
    g = torch.nn.functional.normalize(embeddings["gallery_feats"].float(), dim=1)
    n_show = min(int(cfg.evaluation.get("rank_list_queries", 6)), len(query))
    shown = np.linspace(0, len(query) - 1, n_show).astype(int).tolist()
    distmat = (1 - q[shown] @ g.T).numpy()
    full = np.full((len(query), len(gallery)), np.inf, dtype=np.float32)
    full[shown] = distmat
    rank_fig = plot_rank_list(
        full,
        query,
        gallery,
        query_indices=shown,
        topk=int(cfg.evaluation.get("rank_list_topk", 10)),
        image_size=(cfg.height, cfg.width),
        exclude_same_camera=not is_cross_modality(query + gallery),
        title=f"{cfg.model_name}: top matches (green = same identity)",
    )
    feats = torch.cat([embeddings["query_feats"], embeddings["gallery_feats"]]).numpy()
    pids = torch.cat([embeddings["query_pids"], embeddings["gallery_pids"]]).numpy()
    modality = torch.cat([embeddings["query_modality"], embeddings["gallery_modality"]]).numpy()
    keep = pids > 0  # distractors (pid 0) and junk are not identities to map
    map_fig = plot_embedding_map(
        feats[keep],
        pids[keep],
        modality[keep],
        seed=cfg.seed,
        title=f"{cfg.model_name}: test embeddings (PCA), colour = identity",
    )
    return result.to_dict(), rank_fig, map_fig


def evaluate_untrained(
    embeddings: dict[str, torch.Tensor],
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    info: dict[str, Any],
    config: dict[str, Any],
) -> dict[str, Any]:
    cfg = _config(config)
    return _protocol(embeddings, query_manifest, gallery_manifest, info, cfg).to_dict()


def summarise(
    evaluation: dict[str, Any],
    untrained: dict[str, Any],
    spec: dict[str, Any],
    training: dict[str, Any],
    info: dict[str, Any],
    config: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, Figure]:
    """``metrics.json`` (DVC metrics: headline of the trained and the untrained model, every
    protocol setting, model size, training time), the CMC table for DVC plots and the CMC
    figure (every setting of the trained model, and the untrained model's headline setting);
    prints the trained model beside the untrained one."""
    cfg = _config(config)
    trained_head, untrained_head = headline(evaluation), headline(untrained)
    metrics = {
        "architecture": cfg.model_name,
        "dataset": info["dataset"],
        "synthetic": bool(info.get("synthetic", False)),
        "trained": trained_head,
        "untrained": untrained_head,
        "protocols": evaluation,
        "model": {k: spec[k] for k in ("params", "feat_dim", "num_classes")}
        | {"backbone": spec["kwargs"].get("backbone", "resnet50")},
        "training": training,
    }
    first = next(iter(evaluation["settings"]))
    cmc_trained = evaluation["settings"][first]["cmc"]
    cmc_untrained = untrained["settings"][first]["cmc"]
    cmc_table = pd.DataFrame(
        {
            "rank": np.arange(1, len(cmc_trained) + 1),
            "trained": cmc_trained,
            "untrained": cmc_untrained,
        }
    )
    curves: dict[str, Any] = {
        f"trained: {name}": setting for name, setting in evaluation["settings"].items()
    }
    curves[f"untrained: {first}"] = untrained["settings"][first]
    cmc_fig = plot_cmc(curves, title=f"{cfg.model_name} on {info['dataset']} (CMC)")
    table = Table(title=f"{cfg.model_name} on {info['dataset']} ({trained_head['protocol']})")
    table.add_column("model")
    for key in HEADLINE_KEYS:
        table.add_column(key, justify="right")
    for label, head in (("untrained", untrained_head), ("trained", trained_head)):
        table.add_row(label, *[f"{100 * head[k]:.1f}" if k in head else "-" for k in HEADLINE_KEYS])
    Console().print(table)
    logger.info(
        "%s: trained R1 %.1f / mAP %.1f / mINP %.1f vs untrained R1 %.1f / mAP %.1f / mINP %.1f",
        cfg.model_name,
        *(100 * trained_head[k] for k in ("R1", "mAP", "mINP")),
        *(100 * untrained_head[k] for k in ("R1", "mAP", "mINP")),
    )
    return metrics, cmc_table, cmc_fig
