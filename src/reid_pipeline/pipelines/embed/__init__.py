"""``embed``: a trained model's embeddings of a folder of images, and a faiss index of them
(docs/inference.md)."""

from reid_pipeline.pipelines.embed.pipeline import create_pipeline

__all__ = ["create_pipeline"]
