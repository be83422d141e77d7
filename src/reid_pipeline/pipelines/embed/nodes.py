"""Nodes of ``embed``: the library functions of ``reid_pipeline.inference`` with the parameters
of ``conf/base/parameters_embed.yml``; each returns a summary the catalog saves as JSON."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from reid_pipeline.inference import build_index, embed_folder

logger = logging.getLogger(__name__)


def embed_images(params: Mapping[str, Any]) -> dict[str, Any]:
    """Embed ``params.images`` with ``params.model_dir`` into ``params.out``."""
    result = embed_folder(
        params["model_dir"],
        params["images"],
        params["out"],
        batch_size=int(params.get("batch_size", 64)),
        flip=bool(params.get("flip", False)),
        backend=str(params.get("backend", "torch")),
        modality=str(params.get("modality", "visible")),
        progress=bool(params.get("progress", True)),
    )
    for path, reason in result.skipped:
        logger.warning("skipped %s: %s", path, reason)
    return {
        "embeddings": str(result.out),
        "count": result.count,
        "skipped": [list(s) for s in result.skipped],
        "resumed_parts": result.resumed_chunks,
    }


def index_embeddings(embedded: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Index the embeddings file ``embed_images`` wrote."""
    info = build_index(
        embedded["embeddings"],
        params["out"],
        kind=str(params.get("kind", "flat")),
        nlist=params.get("nlist"),
        nprobe=params.get("nprobe"),
        hnsw_m=int(params.get("hnsw_m", 32)),
        ef_search=int(params.get("ef_search", 64)),
        ef_construction=int(params.get("ef_construction", 80)),
    )
    return {
        "index": str(info.index_file),
        "sidecar": str(info.sidecar_file),
        "kind": info.kind,
        "count": info.count,
        "dim": info.dim,
    }
