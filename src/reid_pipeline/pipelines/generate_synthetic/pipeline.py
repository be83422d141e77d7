"""``generate_synthetic`` pipeline (the DVC ``generate`` stage runs it)."""

from kedro.pipeline import Node, Pipeline

from reid_pipeline.pipelines.generate_synthetic.nodes import generate_datasets


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                generate_datasets,
                ["params:generate_synthetic.root", "params:generate_synthetic.datasets"],
                "generate_synthetic.synthetic_report",
                name="generate_datasets",
            )
        ]
    )
