"""``search``: top-k matches of query images in the ``embed`` pipeline's index
(docs/inference.md)."""

from reid_pipeline.pipelines.search.pipeline import create_pipeline

__all__ = ["create_pipeline"]
