"""``search`` pipeline (namespace ``search``): ``search_queries`` (``params:search.search`` ->
``search.search_summary``); ``results.csv`` and ``rank_list.png`` go to the folder the
parameters name."""

from kedro.pipeline import Node, Pipeline, pipeline

from reid_pipeline.pipelines.search.nodes import search_queries


def create_pipeline(**kwargs: object) -> Pipeline:
    nodes = Pipeline(
        [Node(search_queries, "params:search", "search_summary", name="search_queries")]
    )
    return pipeline(nodes, namespace="search")
