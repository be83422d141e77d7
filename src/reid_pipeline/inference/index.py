"""Gallery indexes (faiss-cpu) over an embeddings file, and their sidecar.

Every kind searches by inner product on L2-normalised embeddings (cosine similarity):

- ``flat`` (``IndexFlatIP``): exact; the default. Each query costs a full pass over the gallery
  (N x D multiply-adds): fine up to a few hundred thousand images.
- ``ivf`` (``IndexIVFFlat``): the gallery is split into ``nlist`` k-means cells (default
  ``4 sqrt(N)``, at most ``N / 39`` so that every cell gets 39 training points; k-means trains
  on a sample of at most ``64 nlist`` vectors); a query scans
  the ``nprobe`` nearest cells (default ``nlist / 64``, at least 8). Approximate; memory as flat.
- ``hnsw`` (``IndexHNSWFlat``): a navigable small-world graph (``M`` links per node, default 32;
  build breadth ``ef_construction``, default 80; search breadth ``ef_search``, default 64).
  Approximate; fastest queries, slower to build (1M x 256 on 2 cores: about 9 minutes), more
  memory (the links: about ``2 M`` int32 per vector on top of the vectors). Benchmark P9 measures
  the speed / recall trade-off of ``ef_search``.

Files: ``INDEX_FILE`` (``faiss.write_index``) and ``INDEX_FILE.json`` (the sidecar: ``kind``,
``dim``, ``count``, the search parameters, ``spec_sha256`` of the model, ``model`` and
``images_root`` as the embeddings file recorded them, and ``gallery``: the gallery paths in index
order). Both are written atomically; track both with DVC (docs/inference.md).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reid_pipeline.errors import ConfigError, DataError

KINDS = ("flat", "ivf", "hnsw")
FORMAT = "reid-pipeline-index/1"


def sidecar_path(index_file: str | Path) -> Path:
    index_file = Path(index_file)
    return index_file.with_name(index_file.name + ".json")


def default_nlist(n: int) -> int:
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def default_nprobe(nlist: int) -> int:
    return min(nlist, max(8, math.ceil(nlist / 64)))


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32; a zero row stays zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def make_index(
    vectors: np.ndarray,
    kind: str = "flat",
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_search: int = 64,
    ef_construction: int = 80,
    seed: int = 0,
    train_per_list: int = 64,
) -> tuple[Any, dict[str, Any]]:
    """A faiss index holding ``vectors`` (normalised here) and its search parameters. ``ivf``
    trains its k-means on a seeded sample of ``train_per_list * nlist`` vectors (all when
    fewer)."""
    import faiss

    if kind not in KINDS:
        raise ConfigError(f"index kind must be one of {list(KINDS)}, got {kind!r}")
    x = normalize(vectors)
    n, dim = x.shape
    params: dict[str, Any] = {}
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = nlist or default_nlist(n)
        if nlist > n:
            raise ConfigError(f"nlist ({nlist}) must not exceed the gallery size ({n})")
        nprobe = min(nprobe or default_nprobe(nlist), nlist)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        sample = x
        if n > train_per_list * nlist:
            rows = np.random.default_rng(seed).choice(n, train_per_list * nlist, replace=False)
            sample = x[np.sort(rows)]
        index.train(sample)
        index.nprobe = nprobe
        params = {"nlist": nlist, "nprobe": nprobe}
    else:
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
        params = {"hnsw_m": hnsw_m, "ef_search": ef_search, "ef_construction": ef_construction}
    index.add(x)
    return index, params


def apply_params(index: Any, sidecar: dict[str, Any]) -> None:
    """Search parameters of the sidecar onto a loaded index."""
    import faiss

    if sidecar["kind"] == "ivf":
        faiss.extract_index_ivf(index).nprobe = int(sidecar["nprobe"])
    elif sidecar["kind"] == "hnsw":
        index.hnsw.efSearch = int(sidecar["ef_search"])


@dataclass
class IndexInfo:
    index_file: Path
    sidecar_file: Path
    kind: str
    count: int
    dim: int


def build_index(
    embeddings: str | Path,
    out: str | Path,
    *,
    kind: str = "flat",
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_search: int = 64,
    ef_construction: int = 80,
) -> IndexInfo:
    """Index the embeddings file ``embeddings`` into ``out`` and ``out.json``."""
    import faiss

    from reid_pipeline.inference.embed import read_embeddings

    paths, vectors, meta = read_embeddings(embeddings)
    if "spec_sha256" not in meta:
        raise DataError(
            f"{embeddings} records no model (reid_pipeline.spec_sha256): make it with "
            "`reid-pipeline embed`"
        )
    index, params = make_index(
        vectors,
        kind,
        nlist=nlist,
        nprobe=nprobe,
        hnsw_m=hnsw_m,
        ef_search=ef_search,
        ef_construction=ef_construction,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sidecar = {
        "format": FORMAT,
        "kind": kind,
        "metric": "inner_product on L2-normalised embeddings",
        "dim": int(vectors.shape[1]),
        "count": len(paths),
        **params,
        "spec_sha256": meta["spec_sha256"],
        "model": meta.get("model"),
        "backend": meta.get("backend"),
        "flip": meta.get("flip", False),
        "modality": meta.get("modality"),
        "images_root": meta.get("images_root"),
        "embeddings": str(Path(embeddings)),
        "gallery": paths,
    }
    side = sidecar_path(out)
    tmp_index = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp_side = side.with_name(f".{side.name}.tmp{os.getpid()}")
    try:
        faiss.write_index(index, str(tmp_index))
        tmp_side.write_text(json.dumps(sidecar, indent=1), encoding="utf-8")
        os.replace(tmp_index, out)
        os.replace(tmp_side, side)
    finally:
        tmp_index.unlink(missing_ok=True)
        tmp_side.unlink(missing_ok=True)
    return IndexInfo(out, side, kind, len(paths), int(vectors.shape[1]))


def load_index(index_file: str | Path) -> tuple[Any, dict[str, Any]]:
    """(faiss index with the sidecar's search parameters, sidecar)."""
    import faiss

    index_file = Path(index_file)
    side = sidecar_path(index_file)
    if not index_file.is_file():
        raise DataError(f"index file {str(index_file)!r} does not exist")
    if not side.is_file():
        raise DataError(f"{side} is missing: rebuild the index with `reid-pipeline index`")
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{side} is not valid JSON ({exc}); rebuild the index") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise DataError(f"{side} is not an index sidecar of {FORMAT}; rebuild the index")
    try:
        index = faiss.read_index(str(index_file))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise DataError(f"{index_file} cannot be read as a faiss index ({first})") from None
    if index.ntotal != sidecar["count"] or index.d != sidecar["dim"]:
        raise DataError(
            f"{index_file} holds {index.ntotal} vectors of {index.d} dims but {side} lists "
            f"{sidecar['count']} of {sidecar['dim']}: the two files are from different builds"
        )
    apply_params(index, sidecar)
    return index, sidecar
