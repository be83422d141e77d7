from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from reid_pipeline.errors import DataError, WeightsError
from reid_pipeline.inference import build_index, embed_folder, load_index, read_spec, search
from reid_pipeline.inference.embed import SCHEMA
from reid_pipeline.inference.model_dir import spec_sha256

from .conftest import person, write_images

IDS, PER_ID, DIM = 12, 4, 32


def _write(path: Path, names: list[str], feats: np.ndarray, spec_hash: str) -> Path:
    column = pa.array([list(map(float, f)) for f in feats], pa.list_(pa.float32()))
    meta = {"reid_pipeline.spec_sha256": json.dumps(spec_hash)}
    table = pa.Table.from_arrays([pa.array(names), column], schema=SCHEMA.with_metadata(meta))
    pq.write_table(table, path)
    return path


def _identities(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Identity centres far apart, gallery and query images close to their centre."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((IDS, DIM)).astype(np.float32)
    gallery = np.repeat(centres, PER_ID, axis=0) + 0.15 * rng.standard_normal((IDS * PER_ID, DIM))
    query = centres + 0.15 * rng.standard_normal((IDS, DIM))
    return centres, gallery.astype(np.float32), query.astype(np.float32)


def _results(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("rerank", [False, True])
def test_search_puts_an_identitys_own_images_first(tmp_path: Path, kind: str, rerank: bool) -> None:
    _, gallery, query = _identities()
    g_names = [f"id{i // PER_ID:02d}/g{i % PER_ID}.jpg" for i in range(len(gallery))]
    q_names = [f"id{i:02d}/q.jpg" for i in range(IDS)]
    _write(tmp_path / "g.parquet", g_names, gallery, "h")
    _write(tmp_path / "q.parquet", q_names, query, "h")
    build_index(tmp_path / "g.parquet", tmp_path / "g.index", kind=kind, nlist=2, nprobe=2)
    result = search(
        tmp_path / "g.index", tmp_path / "q.parquet", tmp_path / "out", top_k=PER_ID, rerank=rerank
    )
    rows = _results(tmp_path / "out")
    assert result.queries == IDS
    assert len(rows) == IDS * PER_ID
    for row in rows:
        assert row["gallery"].split("/")[0] == row["query"].split("/")[0], row
    ranks = [int(r["rank"]) for r in rows[:PER_ID]]
    assert ranks == [1, 2, 3, 4]
    scores = [float(r["score"]) for r in rows[:PER_ID]]
    assert scores == sorted(scores, reverse=True)
    assert (tmp_path / "out" / "rank_list.png").stat().st_size > 0


def test_flat_scores_are_cosine_similarities(tmp_path: Path) -> None:
    _, gallery, query = _identities(1)
    names = [f"g{i}" for i in range(len(gallery))]
    _write(tmp_path / "g.parquet", names, gallery, "h")
    _write(tmp_path / "q.parquet", ["q0"], query[:1], "h")
    build_index(tmp_path / "g.parquet", tmp_path / "g.index")
    search(tmp_path / "g.index", tmp_path / "q.parquet", tmp_path / "out", top_k=3)
    rows = _results(tmp_path / "out")
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    q = query[0] / np.linalg.norm(query[0])
    sims = g @ q
    best = np.argsort(-sims)[:3]
    assert [r["gallery"] for r in rows] == [names[i] for i in best]
    np.testing.assert_allclose([float(r["score"]) for r in rows], sims[best], atol=1e-5)


def test_index_sidecar_and_errors(tmp_path: Path) -> None:
    _, gallery, query = _identities()
    _write(tmp_path / "g.parquet", [f"g{i}" for i in range(len(gallery))], gallery, "h")
    build_index(tmp_path / "g.parquet", tmp_path / "g.index", kind="ivf")
    index, sidecar = load_index(tmp_path / "g.index")
    assert sidecar["kind"] == "ivf"
    assert sidecar["gallery"][:2] == ["g0", "g1"]
    assert index.ntotal == len(gallery)
    _write(tmp_path / "other.parquet", ["q"], query[:1], "another model")
    with pytest.raises(WeightsError, match="embedded with another model"):
        search(tmp_path / "g.index", tmp_path / "other.parquet", tmp_path / "out")
    (tmp_path / "g.index.json").unlink()
    with pytest.raises(DataError, match=r"g\.index\.json is missing"):
        load_index(tmp_path / "g.index")


def test_search_with_images_finds_near_duplicates(model_dir: Path, tmp_path: Path) -> None:
    """Gallery: two slightly different shots of each of 6 identities; queries: a third shot.
    The model (random weights) maps near-duplicates close together, so each query's own two
    shots come first."""
    rng = np.random.default_rng(3)
    gallery, queries = tmp_path / "gallery", tmp_path / "queries"
    gallery.mkdir()
    queries.mkdir()
    for i in range(6):
        base = person(rng).astype(np.int16)
        for j, folder in enumerate([gallery, gallery, queries]):
            shot = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(shot).save(folder / f"id{i}_{j}.png")
    embed_folder(model_dir, gallery, tmp_path / "g.parquet", progress=False)
    build_index(tmp_path / "g.parquet", tmp_path / "g.index")
    search(tmp_path / "g.index", queries, tmp_path / "out", top_k=2)
    rows = _results(tmp_path / "out")
    assert len(rows) == 12
    for row in rows:
        assert row["gallery"].split("_")[0] == row["query"].split("_")[0], row
    # one image as the query, and the model's spec hash guards the index
    search(tmp_path / "g.index", queries / "id0_2.png", tmp_path / "one", top_k=1)
    assert _results(tmp_path / "one")[0]["gallery"].startswith("id0_")
    assert load_index(tmp_path / "g.index")[1]["spec_sha256"] == spec_sha256(read_spec(model_dir))


def test_kedro_pipelines_call_the_library(model_dir: Path, tmp_path: Path) -> None:
    from reid_pipeline.pipeline_registry import register_pipelines
    from reid_pipeline.pipelines.embed.nodes import embed_images, index_embeddings
    from reid_pipeline.pipelines.search.nodes import search_queries

    pipelines = register_pipelines()
    assert {n.name for n in pipelines["embed"].nodes} == {
        "embed.embed_images",
        "embed.index_embeddings",
    }
    assert "search" in pipelines
    images = tmp_path / "images"
    write_images(images, 4)
    embedded = embed_images(
        {
            "model_dir": str(model_dir),
            "images": str(images),
            "out": str(tmp_path / "g.parquet"),
            "progress": False,
        }
    )
    assert embedded["count"] == 4
    indexed = index_embeddings(embedded, {"out": str(tmp_path / "g.index"), "kind": "flat"})
    assert indexed["count"] == 4
    found = search_queries(
        {"index": indexed["index"], "query": str(images), "out": str(tmp_path / "res"), "top_k": 1}
    )
    assert found["queries"] == 4
    rows = _results(tmp_path / "res")
    assert all(r["query"] == r["gallery"] for r in rows)
