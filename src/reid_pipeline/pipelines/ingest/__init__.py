"""``ingest``: raw dataset folder -> train / query / gallery manifests + statistics."""

from reid_pipeline.pipelines.ingest.pipeline import create_pipeline, ingest_template

__all__ = ["create_pipeline", "ingest_template"]
