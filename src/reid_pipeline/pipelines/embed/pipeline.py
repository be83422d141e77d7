"""``embed`` pipeline (namespace ``embed``): ``embed_images`` (``params:embed.embed`` ->
``embed.embed_summary``) then ``index_embeddings`` (-> ``embed.index_summary``). The embeddings
file and the index are written by the library (resumable, atomic) at the paths the parameters
name; the catalog holds the JSON summaries."""

from kedro.pipeline import Node, Pipeline, pipeline

from reid_pipeline.pipelines.embed.nodes import embed_images, index_embeddings


def create_pipeline(**kwargs: object) -> Pipeline:
    nodes = Pipeline(
        [
            Node(embed_images, "params:embed", "embed_summary", name="embed_images"),
            Node(
                index_embeddings,
                ["embed_summary", "params:index"],
                "index_summary",
                name="index_embeddings",
            ),
        ]
    )
    return pipeline(nodes, namespace="embed")
