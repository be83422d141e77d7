"""``generate_synthetic`` pipeline (the DVC ``generate`` stage runs it).

The node lives under the ``generate_synthetic`` namespace (one Kedro-Viz group, and no warning
about a dotted dataset name): it reads ``params:generate_synthetic.root`` and
``params:generate_synthetic.datasets`` and writes the catalog entry
``generate_synthetic.synthetic_report`` (``data/08_reporting/synthetic_data.json``).
"""

from kedro.pipeline import Node, Pipeline, pipeline

from reid_pipeline.pipelines.generate_synthetic.nodes import generate_datasets

NAMESPACE = "generate_synthetic"


def create_pipeline(**kwargs: object) -> Pipeline:
    nodes = Pipeline(
        [
            Node(
                generate_datasets,
                ["params:root", "params:datasets"],
                "synthetic_report",
                name="generate_datasets",
            )
        ]
    )
    return pipeline(nodes, namespace=NAMESPACE)
