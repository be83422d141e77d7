"""Using a trained model: embed a folder, index and search a gallery, export to ONNX
(docs/inference.md)."""

from reid_pipeline.inference.backends import Embedder, open_embedder
from reid_pipeline.inference.embed import (
    EmbedResult,
    embed_folder,
    list_images,
    read_embeddings,
    read_metadata,
)
from reid_pipeline.inference.index import build_index, load_index
from reid_pipeline.inference.model_dir import load_model_dir, read_spec, spec_sha256
from reid_pipeline.inference.onnx_export import export_onnx
from reid_pipeline.inference.search import search

__all__ = [
    "EmbedResult",
    "Embedder",
    "build_index",
    "embed_folder",
    "export_onnx",
    "list_images",
    "load_index",
    "load_model_dir",
    "open_embedder",
    "read_embeddings",
    "read_metadata",
    "read_spec",
    "search",
    "spec_sha256",
]
