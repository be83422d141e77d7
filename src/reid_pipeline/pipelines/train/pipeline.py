"""``train_<arch>``: parameters -> ingest -> hold-out -> train -> extract -> evaluate -> report.

One template for every architecture, instantiated under the architecture's namespace; its
parameters are the ``<arch>`` block of ``conf/base/parameters_train_<arch>.yml``. The pipeline
registry makes one ``train_<arch>`` per registered model (``reid_pipeline.models.list_models``).
"""

from __future__ import annotations

import functools

from kedro.pipeline import Node, Pipeline, pipeline

from reid_pipeline.pipelines.ingest.pipeline import ingest_template
from reid_pipeline.pipelines.train import nodes
from reid_pipeline.viz.stripes import declares_stripes

#: the run id the project's hooks provide for each run (``<arch>.run_id`` once namespaced)
RUN_ID = "run_id"


def _bound(arch: str):
    """``check_parameters`` bound to the parameter block ``arch``; keeps its name for Kedro-Viz."""
    bound = functools.partial(nodes.check_parameters, arch=arch)
    functools.update_wrapper(bound, nodes.check_parameters)
    return bound


def _figures(arch: str) -> list[Node]:
    """The papers' figures: Grad-CAM and t-SNE for every model, the stripes for a model that
    declares them (a ``granularities`` option, ``viz.stripes.declares_stripes``)."""
    q = "query_manifest"
    out = [
        Node(
            nodes.plot_activation_maps,
            ["weights", "model_spec", q, "embeddings", "experiment"],
            "activation_maps",
            name="plot_activation_maps",
        ),
        Node(nodes.plot_tsne, ["embeddings", "experiment"], "tsne", name="plot_tsne"),
    ]
    if declares_stripes(arch):
        out.append(
            Node(
                nodes.plot_stripes,
                ["weights", "model_spec", q, "experiment"],
                "stripes",
                name="plot_stripes",
            )
        )
    return out


def _template(arch: str) -> Pipeline:
    q, g, info = "query_manifest", "gallery_manifest", "dataset_info"
    check = Node(
        _bound(arch),
        [
            "params:block",
            "params:datasets",
            "params:protocols",
            "params:recipe_override",
            "params:live_metrics_dir",
        ],
        ["experiment", "dataset_config"],
        name="check_parameters",
    )
    train = [
        Node(
            nodes.split_validation,
            ["train_manifest", "experiment"],
            ["fit_manifest", "val_query_manifest", "val_gallery_manifest"],
            name="split_validation",
        ),
        Node(
            nodes.train_model,
            ["fit_manifest", "val_query_manifest", "val_gallery_manifest", "experiment", RUN_ID],
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
            ["weights", "model_spec", q, g, "experiment"],
            "embeddings",
            name="extract_embeddings",
        ),
        Node(
            nodes.extract_untrained_embeddings,
            ["model_spec", q, g, "experiment"],
            "untrained_embeddings",
            name="extract_untrained_embeddings",
        ),
        Node(
            nodes.evaluate,
            ["embeddings", q, g, info, "experiment"],
            "evaluation",
            name="evaluate",
        ),
        Node(
            nodes.evaluate,
            ["untrained_embeddings", q, g, info, "experiment"],
            "untrained_evaluation",
            name="evaluate_untrained",
        ),
        Node(
            nodes.plot_rank_list,
            ["embeddings", q, g, "experiment"],
            "rank_list",
            name="plot_rank_list",
        ),
        Node(
            nodes.plot_embedding_map,
            ["embeddings", "experiment"],
            "embedding_map",
            name="plot_embedding_map",
        ),
        Node(
            nodes.summarise,
            ["evaluation", "untrained_evaluation", "model_spec", "training_summary", info, RUN_ID],
            ["metrics", "cmc_table"],
            name="summarise",
        ),
        Node(
            nodes.plot_cmc,
            ["evaluation", "untrained_evaluation", info, "model_spec"],
            "cmc_curve",
            name="plot_cmc",
        ),
        *_figures(arch),
    ]
    return Pipeline([check]) + ingest_template(dataset="dataset_config") + Pipeline(train)


def create_train_pipeline(arch: str) -> Pipeline:
    """The template under namespace ``arch``, reading the parameter block ``arch``."""
    return pipeline(
        _template(arch),
        namespace=arch,
        parameters={
            "params:block": f"params:{arch}",
            "params:datasets": "params:datasets",
            "params:protocols": "params:protocols",
            "params:recipe_override": "params:recipe_override",
            "params:live_metrics_dir": "params:live_metrics_dir",
        },
    )


def create_pipeline(**kwargs: object) -> Pipeline:
    """Every architecture's train pipeline together (``kedro run --pipeline=train``)."""
    from reid_pipeline.models import list_models

    return sum((create_train_pipeline(arch) for arch in list_models()), Pipeline([]))
