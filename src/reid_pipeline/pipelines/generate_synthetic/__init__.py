"""``generate_synthetic``: the embedded synthetic datasets, written in the real layouts."""

from reid_pipeline.pipelines.generate_synthetic.pipeline import create_pipeline

__all__ = ["create_pipeline"]
