"""Custom Kedro datasets (``datasets``: atomic writes, safetensors, DVCLive history) and the
Kedro-free helpers they share with the library (``digest``, ``live``).

The datasets are loaded lazily, so the library can import ``reid_pipeline.io.digest`` without
importing Kedro: only these datasets and ``pipelines/`` use Kedro."""

from __future__ import annotations

from typing import Any

__all__ = ["AtomicDataset", "DVCLiveHistoryDataset", "SafetensorsDataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from reid_pipeline.io import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'reid_pipeline.io' has no attribute {name!r}")
