"""Dataset formats, the synthetic generator, samplers, transforms and the torch Dataset.

Public API: ``load_dataset(name, root, **options)`` and ``generate_synthetic(root, layout,
**options)``; both are imported on first use so ``import reid_pipeline.data.records`` stays light.
Every dataset format, the synthetic generator and ``verify_images`` are described in
docs/datasets.md; training on your own crops in docs/custom_data.md.
"""

from __future__ import annotations

from typing import Any

from reid_pipeline.data.records import (
    DatasetFormatError,
    Modality,
    Record,
    Splits,
    frame_to_records,
    records_to_frame,
    relabel,
)

__all__ = [
    "DatasetFormatError",
    "Modality",
    "Record",
    "Splits",
    "frame_to_records",
    "generate_synthetic",
    "load_dataset",
    "records_to_frame",
    "relabel",
]


def __getattr__(name: str) -> Any:
    if name == "load_dataset":
        from reid_pipeline.data.loaders import load_dataset

        return load_dataset
    if name == "generate_synthetic":
        from reid_pipeline.data.synthetic import generate_synthetic

        return generate_synthetic
    raise AttributeError(f"module 'reid_pipeline.data' has no attribute {name!r}")
