"""The figures of a training run, built from what the pipeline hands over (embeddings,
manifests, protocol results): rank list, embedding map, CMC curves. Nodes call these and only
these, so a node stays a few lines of glue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from reid_pipeline.data.records import Record
from reid_pipeline.evaluation.distance import distance_rows
from reid_pipeline.viz.cmc import plot_cmc
from reid_pipeline.viz.embedding import plot_embedding_map
from reid_pipeline.viz.ranklist import plot_rank_list


def rank_list_figure(
    embeddings: Mapping[str, torch.Tensor],
    query: Sequence[Record],
    gallery: Sequence[Record],
    *,
    metric: str,
    queries: int,
    topk: int,
    image_size: tuple[int, int],
    title: str,
) -> Figure:
    """``queries`` evenly spaced queries and their ``topk`` nearest gallery images under
    ``metric`` (the protocol's distance); same-camera matches are skipped as the
    single-modality protocols skip them."""
    n_show = min(queries, len(query))
    shown = np.linspace(0, len(query) - 1, n_show).astype(int).tolist()
    distmat = np.full((len(query), len(gallery)), np.inf, dtype=np.float32)
    if shown:
        q, g = embeddings["query_feats"].float(), embeddings["gallery_feats"].float()
        distmat[shown] = distance_rows(q, g, shown, metric=metric)
    cross = any(r.modality for r in [*query, *gallery])
    return plot_rank_list(
        distmat,
        query,
        gallery,
        query_indices=shown,
        topk=topk,
        image_size=image_size,
        exclude_same_camera=not cross,
        title=title,
    )


def embedding_map_figure(
    embeddings: Mapping[str, torch.Tensor], *, seed: int, title: str, benchmark: bool = True
) -> Figure:
    """PCA of the test embeddings (query + gallery), colour = identity, marker = modality; on
    the benchmarks (``benchmark``) distractors and junk (pid <= 0) are left out - on your own
    data (manifest / folders formats) pid 0 is a person like any other."""
    feats = torch.cat([embeddings["query_feats"], embeddings["gallery_feats"]]).float().numpy()
    pids = torch.cat([embeddings["query_pids"], embeddings["gallery_pids"]]).numpy()
    modality = torch.cat([embeddings["query_modality"], embeddings["gallery_modality"]]).numpy()
    keep = pids > 0 if benchmark else np.ones(len(pids), dtype=bool)
    return plot_embedding_map(feats[keep], pids[keep], modality[keep], seed=seed, title=title)


def cmc_figure(
    evaluation: Mapping[str, Any], untrained: Mapping[str, Any], *, title: str
) -> Figure:
    """Every setting of the trained model and the untrained model's headline setting."""
    curves: dict[str, Any] = {
        f"trained: {name}": setting for name, setting in evaluation["settings"].items()
    }
    first = next(iter(evaluation["settings"]))
    curves[f"untrained: {first}"] = untrained["settings"][first]
    return plot_cmc(curves, title=title)
