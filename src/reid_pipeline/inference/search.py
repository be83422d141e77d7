"""``search``: top-k gallery matches of queries in an index, as ``results.csv`` and
``rank_list.png``.

Queries: one image, a folder of images (searched recursively), or an embeddings file. Images
are embedded with the model the index was built from: the index sidecar records it (``model``,
as the gallery's embeddings file recorded it, with its backend, flip and modality); ``model``
here overrides the path (another copy of the same model), and a model whose spec differs from the
index's (``spec_sha256``) is refused, as is an embeddings file made by another model.

``results.csv``: ``query, rank, gallery, score``, ranks from 1, ``score`` the cosine similarity
(inner product of L2-normalised embeddings). ``rerank``: the first ``rerank_candidates``
(default 100) matches of each query are re-ranked with the project's k-reciprocal re-ranking
(``evaluation.rerank.re_ranking_from_features``, cosine distance, k1=20, k2=6, lambda=0.3, on
the joint graph of a block of queries and their candidates), and ``score`` is then
``1 - the re-ranked distance``.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reid_pipeline.errors import ConfigError, DataError, WeightsError
from reid_pipeline.inference.index import load_index, normalize

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
RANK_LIST_FILE = "rank_list.png"
_QUERY_BLOCK = 64


@dataclass
class SearchResult:
    results_file: Path
    rank_list_file: Path | None
    queries: int
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _queries(
    query: Path,
    sidecar: dict[str, Any],
    *,
    model: str | Path | None,
    backend: str | None,
    batch_size: int,
) -> tuple[list[str], np.ndarray, str | None, list[tuple[str, str]]]:
    """(query names, embeddings, image root or None, skipped)."""
    from reid_pipeline.inference.backends import open_embedder
    from reid_pipeline.inference.embed import embed_paths, list_images, read_embeddings

    if not query.exists():
        raise DataError(f"query {str(query)!r} does not exist")
    if query.is_file() and query.suffix.lower() == ".parquet":
        names, feats, meta = read_embeddings(query)
        if meta.get("spec_sha256") != sidecar["spec_sha256"]:
            raise WeightsError(
                f"{query} was embedded with another model than the index "
                f"(spec sha256 {str(meta.get('spec_sha256'))[:12]} vs "
                f"{sidecar['spec_sha256'][:12]}): embed the queries with the index's model"
            )
        return names, feats, meta.get("images_root"), []
    source = model or sidecar.get("model")
    if not source:
        raise ConfigError("the index records no model: pass --model MODEL_DIR")
    embedder = open_embedder(source, backend or sidecar.get("backend") or "torch")
    if embedder.spec_hash != sidecar["spec_sha256"]:
        raise WeightsError(
            f"model {embedder.source} is not the model the index was built with (spec sha256 "
            f"{embedder.spec_hash[:12]} vs {sidecar['spec_sha256'][:12]}): pass the right --model"
        )
    if query.is_dir():
        root, paths = query, list_images(query)
        if not paths:
            raise DataError(f"query folder {str(query)!r} holds no jpg, jpeg, png or bmp file")
    else:
        root, paths = query.parent, [query.name]
    names, feats, skipped = embed_paths(
        embedder,
        root,
        paths,
        batch_size=batch_size,
        flip=bool(sidecar.get("flip", False)),
        modality=sidecar.get("modality") or "visible",
    )
    return names, feats, str(root.resolve()), skipped


def _rerank(
    index: Any,
    q: np.ndarray,
    ids: np.ndarray,
    *,
    top_k: int,
    k1: int,
    k2: int,
    lambda_value: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-ranked (ids, scores) of each query among its own candidates ``ids`` (Q, C)."""
    import faiss

    from reid_pipeline.evaluation.rerank import re_ranking_from_features

    if isinstance(index, faiss.IndexIVF) or faiss.try_extract_index_ivf(index) is not None:
        faiss.extract_index_ivf(index).make_direct_map()
    out_ids = np.full((len(q), top_k), -1, dtype=np.int64)
    out_scores = np.full((len(q), top_k), np.nan, dtype=np.float32)
    for lo in range(0, len(q), _QUERY_BLOCK):
        block = ids[lo : lo + _QUERY_BLOCK]
        cand = np.unique(block[block >= 0])
        g = index.reconstruct_batch(cand)  # (C, D), normalised already
        n = len(block) + len(cand)
        dist = re_ranking_from_features(
            q[lo : lo + _QUERY_BLOCK],
            g,
            metric="cosine",
            k1=max(1, min(k1, n - 1)),
            k2=max(1, min(k2, n - 1)),
            lambda_value=lambda_value,
        )  # (Qb, C)
        pos = {int(c): j for j, c in enumerate(cand)}
        for r, row in enumerate(block):
            own = np.array([int(c) for c in row if c >= 0], dtype=np.int64)
            d = dist[r, [pos[int(c)] for c in own]]
            order = np.argsort(d, kind="stable")[:top_k]
            out_ids[lo + r, : len(order)] = own[order]
            out_scores[lo + r, : len(order)] = 1.0 - d[order]
    return out_ids, out_scores


def search(
    index_file: str | Path,
    query: str | Path,
    out_dir: str | Path,
    *,
    top_k: int = 10,
    rerank: bool = False,
    model: str | Path | None = None,
    backend: str | None = None,
    batch_size: int = 64,
    rerank_candidates: int = 100,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    rank_list_rows: int = 8,
    rank_list_columns: int = 10,
) -> SearchResult:
    """Search ``query`` in ``index_file``; write ``out_dir/results.csv`` and
    ``out_dir/rank_list.png`` (see the module docstring)."""
    for name, value in (("top_k", top_k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    index, sidecar = load_index(index_file)
    names, feats, query_root, skipped = _queries(
        Path(query), sidecar, model=model, backend=backend, batch_size=batch_size
    )
    if feats.shape[1] != sidecar["dim"]:
        raise DataError(
            f"queries have {feats.shape[1]} dims, the index {sidecar['dim']}: another model"
        )
    q = normalize(feats)
    k = min(top_k, index.ntotal)
    if rerank:
        scores, ids = index.search(q, min(max(rerank_candidates, top_k), index.ntotal))
        ids, scores = _rerank(index, q, ids, top_k=k, k1=k1, k2=k2, lambda_value=lambda_value)
    else:
        scores, ids = index.search(q, k)  # (Q, k), (Q, k); -1 where fewer than k found
    gallery = sidecar["gallery"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / RESULTS_FILE
    tmp = results.with_name(f".{results.name}.tmp{os.getpid()}")
    rows: list[list[tuple[str, float]]] = []
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["query", "rank", "gallery", "score"])
            for name, row_ids, row_scores in zip(names, ids, scores, strict=True):
                matches = [
                    (gallery[int(i)], float(s))
                    for i, s in zip(row_ids, row_scores, strict=True)
                    if i >= 0
                ]
                rows.append(matches)
                for rank, (path, score) in enumerate(matches, start=1):
                    writer.writerow([name, rank, path, f"{score:.6f}"])
        os.replace(tmp, results)
    finally:
        tmp.unlink(missing_ok=True)
    from reid_pipeline.inference.ranklist import draw_rank_list

    picture = out_dir / RANK_LIST_FILE
    draw_rank_list(
        picture,
        [(n, m) for n, m in zip(names, rows, strict=True)][:rank_list_rows],
        query_root=query_root,
        gallery_root=sidecar.get("images_root"),
        columns=min(rank_list_columns, k),
    )
    return SearchResult(results, picture, len(names), skipped)
