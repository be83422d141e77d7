"""``report`` pipeline: metrics of every trained architecture -> table + chart."""

from kedro.pipeline import Node, Pipeline

from reid_pipeline.pipelines.report.nodes import collect_metrics, render_chart, render_table


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                collect_metrics,
                ["report.all_metrics", "params:report.order"],
                "report.results",
                name="collect_metrics",
            ),
            Node(render_table, "report.results", "report.table", name="render_table"),
            Node(render_chart, "report.results", "report.chart", name="render_chart"),
        ]
    )
