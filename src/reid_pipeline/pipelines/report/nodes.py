"""Report nodes: glue between the catalog and ``experiment.report`` / ``viz.report``."""

from reid_pipeline.experiment.report import collect_metrics, render_table
from reid_pipeline.viz.report import render_chart

__all__ = ["collect_metrics", "render_chart", "render_table"]
