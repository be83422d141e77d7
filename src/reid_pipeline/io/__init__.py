"""Custom Kedro datasets (the library itself never imports Kedro; only these and pipelines/)."""

from reid_pipeline.io.datasets import AtomicDataset, SafetensorsDataset

__all__ = ["AtomicDataset", "SafetensorsDataset"]
