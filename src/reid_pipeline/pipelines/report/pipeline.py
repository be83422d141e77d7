"""``report`` pipeline: metrics of every trained architecture -> table + chart.

The nodes live under the ``report`` namespace (one group in Kedro-Viz), so the catalog entries
are ``report.all_metrics`` (every ``data/08_reporting/<arch>/metrics.json``), ``report.table``
(``report.md``) and ``report.chart`` (``report.png``); the row order is ``params:report.order``
(architectures not named there follow alphabetically). ``report.all_model_specs`` (every
``data/06_models/<arch>/model_spec.json``) lets the report leave out metrics that scored an
older model than the one on disk.
"""

from kedro.pipeline import Node, Pipeline, pipeline

from reid_pipeline.pipelines.report.nodes import collect_metrics, render_chart, render_table


def create_pipeline(**kwargs: object) -> Pipeline:
    nodes = Pipeline(
        [
            Node(
                collect_metrics,
                ["all_metrics", "params:order", "all_model_specs"],
                "results",
                name="collect_metrics",
            ),
            Node(render_table, "results", "table", name="render_table"),
            Node(render_chart, "results", "chart", name="render_chart"),
        ]
    )
    return pipeline(nodes, namespace="report")
