"""Nodes of the ``train_<arch>`` pipelines: glue between the catalog and the library. The run's
settings travel between nodes in memory as one typed ``Experiment``."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from reid_pipeline.data.holdout import holdout_split
from reid_pipeline.data.records import frame_to_records, records_to_frame
from reid_pipeline.experiment import summary
from reid_pipeline.experiment.checks import check_experiment
from reid_pipeline.experiment.recipe import Experiment, resolve_experiment
from reid_pipeline.experiment.run import (
    embed_records,
    evaluate_embeddings,
    is_cross_modality,
    rebuild_model,
    train_from_records,
)
from reid_pipeline.viz import run as figures
from reid_pipeline.viz.curves import plot_training_curves
from reid_pipeline.viz.gradcam import activation_maps_figure
from reid_pipeline.viz.stripes import stripes_figure
from reid_pipeline.viz.tsne import tsne_figure

Embeddings = dict[str, torch.Tensor]
#: dataset formats of your own images, where pid 0 is a person (not a distractor)
CUSTOM_FORMATS = ("manifest", "folders")


def resolve(
    block: dict[str, Any],
    datasets: dict[str, Any],
    protocols: dict[str, Any],
    recipe_override: dict[str, Any],
    live_metrics_dir: str | None,
    arch: str,
) -> Experiment:
    """The architecture's selected recipe as a typed ``Experiment`` (no checks beyond types)."""
    return resolve_experiment(
        arch,
        block,
        datasets=datasets,
        protocols=protocols,
        recipe_override=recipe_override,
        live_metrics_dir=live_metrics_dir,
    )


def check_parameters(
    block: dict[str, Any],
    datasets: dict[str, Any],
    protocols: dict[str, Any],
    recipe_override: dict[str, Any],
    live_metrics_dir: str | None,
    arch: str = "experiment",
) -> tuple[Experiment, dict[str, Any]]:
    """Select and check the recipe (types, names, a dry forward) before anything is read or
    written; messages name the key as written (``dimn.cpu_synthetic.sampler``)."""
    experiment = resolve(block, datasets, protocols, recipe_override, live_metrics_dir, arch)
    check_experiment(experiment)
    return experiment, experiment.dataset.as_dict()


def split_validation(
    train_manifest: pd.DataFrame, experiment: Experiment
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Hold ``validation.num_ids`` training identities out for model selection, drawn with
    ``validation.seed`` (not the training seed: every training seed gets the same split)."""
    records = frame_to_records(train_manifest)
    split = holdout_split(
        records,
        num_ids=experiment.recipe.validation.num_ids,
        seed=experiment.recipe.validation.seed,
        cross_modality=is_cross_modality(records),
    )
    return tuple(records_to_frame(part) for part in (split.train, split.query, split.gallery))


def train_model(
    fit_manifest: pd.DataFrame,
    val_query_manifest: pd.DataFrame,
    val_gallery_manifest: pd.DataFrame,
    experiment: Experiment,
    run_id: str,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], pd.DataFrame, dict[str, Any]]:
    outcome = train_from_records(
        frame_to_records(fit_manifest),
        frame_to_records(val_query_manifest),
        frame_to_records(val_gallery_manifest),
        experiment,
        run_id=run_id,
    )
    return outcome.state_dict, outcome.spec, outcome.history, outcome.summary


def plot_training(history: pd.DataFrame, spec: dict[str, Any]) -> Figure:
    return plot_training_curves(history, title=f"{spec['name']} training")


def _embed(
    state: dict[str, torch.Tensor] | None,
    spec: dict[str, Any],
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    experiment: Experiment,
) -> Embeddings:
    model = rebuild_model(spec, state)
    out: Embeddings = {}
    for prefix, manifest in (("query", query_manifest), ("gallery", gallery_manifest)):
        feats = embed_records(model, frame_to_records(manifest), experiment.recipe)
        out |= {f"{prefix}_{k}": getattr(feats, k) for k in ("feats", "pids", "camids", "modality")}
    return out


def extract_embeddings(
    weights: dict[str, torch.Tensor],
    spec: dict[str, Any],
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    experiment: Experiment,
) -> Embeddings:
    """Query and gallery embeddings of the trained model (test transform, optional flip)."""
    return _embed(weights, spec, query_manifest, gallery_manifest, experiment)


def extract_untrained_embeddings(
    spec: dict[str, Any],
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    experiment: Experiment,
) -> Embeddings:
    """The same for the untrained model (the initial weights training started from)."""
    return _embed(None, spec, query_manifest, gallery_manifest, experiment)


def evaluate(
    embeddings: Embeddings,
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    info: dict[str, Any],
    experiment: Experiment,
) -> dict[str, Any]:
    """The dataset's protocol, every setting (the trained or the untrained model)."""
    query, gallery = frame_to_records(query_manifest), frame_to_records(gallery_manifest)
    return evaluate_embeddings(embeddings, query, gallery, info, experiment).to_dict()


def plot_rank_list(
    embeddings: Embeddings,
    query_manifest: pd.DataFrame,
    gallery_manifest: pd.DataFrame,
    experiment: Experiment,
) -> Figure:
    e, size = experiment.recipe.evaluation, experiment.recipe.input
    return figures.rank_list_figure(
        embeddings,
        frame_to_records(query_manifest),
        frame_to_records(gallery_manifest),
        metric=e.metric,
        queries=e.rank_list_queries,
        topk=e.rank_list_topk,
        image_size=(size.height, size.width),
        title=f"{experiment.arch}: top matches (green = same identity)",
    )


def plot_embedding_map(embeddings: Embeddings, experiment: Experiment) -> Figure:
    return figures.embedding_map_figure(
        embeddings,
        seed=experiment.recipe.seed,
        title=f"{experiment.arch}: test embeddings (PCA), colour = identity",
        benchmark=experiment.dataset.name not in CUSTOM_FORMATS,
    )


def plot_activation_maps(
    weights: dict[str, torch.Tensor],
    spec: dict[str, Any],
    query_manifest: pd.DataFrame,
    embeddings: Embeddings,
    experiment: Experiment,
) -> Figure:
    """Grad-CAM of a few test persons (docs/figures.md)."""
    size = experiment.recipe.input
    return activation_maps_figure(
        rebuild_model(spec, weights),
        frame_to_records(query_manifest),
        embeddings,
        image_size=(size.height, size.width),
        benchmark=experiment.dataset.name not in CUSTOM_FORMATS,
        title=f"{experiment.arch}: where the model looks (Grad-CAM)",
    )


def plot_tsne(embeddings: Embeddings, experiment: Experiment) -> Figure:
    return tsne_figure(
        embeddings,
        seed=experiment.recipe.seed,
        title=f"{experiment.arch}: t-SNE of the test embeddings",
        benchmark=experiment.dataset.name not in CUSTOM_FORMATS,
    )


def plot_stripes(
    weights: dict[str, torch.Tensor],
    spec: dict[str, Any],
    query_manifest: pd.DataFrame,
    experiment: Experiment,
) -> Figure:
    """The model's horizontal stripes over two test persons (models with ``granularities``)."""
    size = experiment.recipe.input
    return stripes_figure(
        rebuild_model(spec, weights),
        frame_to_records(query_manifest),
        image_size=(size.height, size.width),
        benchmark=experiment.dataset.name not in CUSTOM_FORMATS,
        title=f"{experiment.arch}: horizontal stripes",
    )


def summarise(
    evaluation: dict[str, Any],
    untrained: dict[str, Any],
    spec: dict[str, Any],
    training: dict[str, Any],
    info: dict[str, Any],
    run_id: str,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``metrics.json`` and the CMC table (DVC metrics and plots); prints the trained model
    beside the untrained one."""
    metrics = summary.metrics_document(evaluation, untrained, spec, training, info, run_id=run_id)
    summary.print_comparison(metrics)
    return metrics, summary.cmc_table(evaluation, untrained)


def plot_cmc(
    evaluation: dict[str, Any],
    untrained: dict[str, Any],
    info: dict[str, Any],
    spec: dict[str, Any],
) -> Figure:
    title = f"{spec.get('arch', spec['name'])} on {info['dataset']} (CMC)"
    return figures.cmc_figure(evaluation, untrained, title=title)
