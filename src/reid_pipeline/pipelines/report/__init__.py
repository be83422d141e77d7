"""``report``: every architecture's metrics side by side (Markdown table + PNG chart)."""

from reid_pipeline.pipelines.report.pipeline import create_pipeline

__all__ = ["create_pipeline"]
