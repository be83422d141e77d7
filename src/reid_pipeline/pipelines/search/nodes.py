"""Node of ``search``: ``inference.search`` with ``conf/base/parameters_search.yml``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reid_pipeline.inference import search


def search_queries(params: Mapping[str, Any]) -> dict[str, Any]:
    """Search ``params.query`` in ``params.index``; results under ``params.out``."""
    result = search(
        params["index"],
        params["query"],
        params["out"],
        top_k=int(params.get("top_k", 10)),
        rerank=bool(params.get("rerank", False)),
        model=params.get("model_dir"),
    )
    return {
        "results": str(result.results_file),
        "rank_list": str(result.rank_list_file),
        "queries": result.queries,
        "skipped": [list(s) for s in result.skipped],
    }
