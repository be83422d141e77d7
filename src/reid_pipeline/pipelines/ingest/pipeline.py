"""``ingest`` pipeline, and the ingestion template every train pipeline starts with."""

from kedro.pipeline import Node, Pipeline, pipeline

from reid_pipeline.pipelines.ingest.nodes import ingest_dataset, select_dataset


def ingest_template(dataset: str = "params:dataset") -> Pipeline:
    """Un-namespaced ingestion nodes reading the dataset description from ``dataset`` (outputs
    ``train_manifest``, ``query_manifest``, ``gallery_manifest``, ``dataset_info``,
    ``dataset_statistics``)."""
    return Pipeline(
        [
            Node(
                ingest_dataset,
                dataset,
                [
                    "train_manifest",
                    "query_manifest",
                    "gallery_manifest",
                    "dataset_info",
                    "dataset_statistics",
                ],
                name="ingest_dataset",
            )
        ]
    )


def create_pipeline(**kwargs: object) -> Pipeline:
    select = Pipeline(
        [
            Node(
                select_dataset,
                ["params:dataset_slot", "params:datasets"],
                "dataset_config",
                name="select_dataset",
            )
        ]
    )
    return pipeline(
        select + ingest_template(dataset="dataset_config"),
        namespace="ingest",
        parameters={"params:datasets": "params:datasets"},
    )
