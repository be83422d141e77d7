"""The train pipeline template (``create_train_pipeline``), one ``train_<arch>`` per model."""

from reid_pipeline.pipelines.train.pipeline import create_pipeline, create_train_pipeline

__all__ = ["create_pipeline", "create_train_pipeline"]
