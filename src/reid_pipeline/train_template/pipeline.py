"""``train_<arch>``: raw folder -> ingest -> hold-out -> train -> extract -> evaluate -> report.

Every architecture runs the same template under its namespace; its parameters are the
``<arch>`` block of ``conf/base/parameters_train_<arch>.yml``.
"""

from kedro.pipeline import Node, Pipeline, pipeline

from reid_pipeline.pipelines.ingest import ingest_template
from reid_pipeline.train_template import nodes

ARCHITECTURES = ("bot", "agw", "dimn", "pmm", "fienet", "wrimnet")


def _template(arch: str) -> Pipeline:
    check = Pipeline(
        [
            Node(
                nodes.checker(arch),
                ["params:experiment", "params:recipe", "params:datasets", "params:protocols"],
                ["experiment_config", "dataset_config"],
                name="check_parameters",
            )
        ]
    )
    train = Pipeline(
        [
            Node(
                nodes.split_validation,
                ["train_manifest", "experiment_config"],
                ["fit_manifest", "val_query_manifest", "val_gallery_manifest"],
                name="split_validation",
            ),
            Node(
                nodes.train_model,
                ["fit_manifest", "val_query_manifest", "val_gallery_manifest", "experiment_config"],
                ["weights", "model_spec", "training_history", "training_summary"],
                name="train_model",
            ),
            Node(
                nodes.plot_training,
                ["training_history", "model_spec"],
                "training_curves",
                name="plot_training",
            ),
            Node(
                nodes.extract_embeddings,
                [
                    "weights",
                    "model_spec",
                    "query_manifest",
                    "gallery_manifest",
                    "experiment_config",
                ],
                "embeddings",
                name="extract_embeddings",
            ),
            Node(
                nodes.extract_untrained_embeddings,
                ["model_spec", "query_manifest", "gallery_manifest", "experiment_config"],
                "untrained_embeddings",
                name="extract_untrained_embeddings",
            ),
            Node(
                nodes.evaluate,
                [
                    "embeddings",
                    "query_manifest",
                    "gallery_manifest",
                    "dataset_info",
                    "experiment_config",
                ],
                ["evaluation", "rank_list", "embedding_map"],
                name="evaluate",
            ),
            Node(
                nodes.evaluate_untrained,
                [
                    "untrained_embeddings",
                    "query_manifest",
                    "gallery_manifest",
                    "dataset_info",
                    "experiment_config",
                ],
                "untrained_evaluation",
                name="evaluate_untrained",
            ),
            Node(
                nodes.summarise,
                [
                    "evaluation",
                    "untrained_evaluation",
                    "model_spec",
                    "training_summary",
                    "dataset_info",
                    "experiment_config",
                ],
                ["metrics", "cmc_table", "cmc_curve"],
                name="summarise",
            ),
        ]
    )
    return check + ingest_template(dataset="dataset_config") + train


def create_train_pipeline(arch: str) -> Pipeline:
    """The template under namespace ``arch``, reading the parameter block ``arch``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHITECTURES}")
    return pipeline(
        _template(arch),
        namespace=arch,
        parameters={
            "params:experiment": f"params:{arch}",
            "params:recipe": f"params:recipes.{arch}",
            "params:datasets": "params:datasets",
            "params:protocols": "params:protocols",
        },
    )
