"""The ``reid-pipeline`` command line: ``embed``, ``index``, ``search``, ``export`` and ``run``
(the Kedro project, like ``kedro run``; also what ``reid-pipeline`` alone does). Known errors
(``ReidError``, missing or unreadable files) print ``error: <message>`` and exit 1;
``REID_TRACEBACK=1`` shows the traceback. See docs/inference.md."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from reid_pipeline.errors import ReidError


def _fail(exc: BaseException) -> None:
    if os.environ.get("REID_TRACEBACK", "") not in ("", "0"):
        raise exc
    message = " ".join(str(exc).split()) or type(exc).__name__
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ReidError, OSError) as exc:
            _fail(exc)

    return wrapper


@click.group(name="reid-pipeline", context_settings={"help_option_names": ["-h", "--help"]})
def main_group() -> None:
    """Person re-identification: train and evaluate with `reid-pipeline run` (the Kedro
    project, like `kedro run`; the default), then embed folders, index and search galleries,
    and export models to ONNX. Errors print one line; REID_TRACEBACK=1 shows the traceback."""


@main_group.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def run_command(ctx: click.Context) -> Any:
    """Run the Kedro project: the options of `kedro run` (`--pipeline NAME`, `--env ENV`, ...;
    `reid-pipeline run --help` lists them)."""
    return run_kedro(list(ctx.args))


def run_kedro(args: list[str]) -> Any:
    """The project's ``run`` command (``reid_pipeline.cli``: it accepts ``--pipeline``), else
    Kedro's own."""
    import importlib

    from kedro.framework.project import configure_project

    package_name = Path(__file__).parents[1].name
    configure_project(package_name)
    project_cli = importlib.import_module(f"{package_name}.cli")
    group = getattr(project_cli, "cli", None)
    run = getattr(project_cli, "run", None)
    if run is None and isinstance(group, click.Group):
        run = group.commands.get("run")
    if run is None:
        from kedro.framework.cli.project import run
    return run.main(args=args, prog_name="reid-pipeline run")


_MODEL_HELP = (
    "MODEL_DIR: the folder a training run writes (data/06_models/<arch>/, holding "
    "model.safetensors and model_spec.json). With --backend onnxruntime: an exported .onnx file "
    "or a MODEL_DIR holding model.onnx."
)


@main_group.command("embed")
@click.option("--model", "model", required=True, type=click.Path(), help=_MODEL_HELP)
@click.option("--images", required=True, type=click.Path(), help="Folder searched recursively.")
@click.option("--out", required=True, type=click.Path(), help="Embeddings file (.parquet).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--flip", is_flag=True, help="Average each embedding with the mirrored image's.")
@click.option(
    "--backend",
    default="torch",
    show_default=True,
    type=click.Choice(["torch", "onnxruntime"]),
    help="Run the model with PyTorch or onnxruntime (an exported .onnx; no PyTorch forward).",
)
@click.option(
    "--modality",
    default="visible",
    show_default=True,
    type=click.Choice(["visible", "infrared"]),
    help="The images' modality, for visible-infrared models (all images of one run share it).",
)
@click.option(
    "--chunk-size",
    default=None,
    type=click.IntRange(min=1),
    help="Images per part file and row group [16 x batch size]; an interrupted run resumes "
    "from the last finished part.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_guarded
def embed_command(
    *,
    model: str,
    images: str,
    out: str,
    batch_size: int,
    flip: bool,
    backend: str,
    modality: str,
    chunk_size: int | None,
    no_progress: bool,
) -> None:
    """Embed every jpg / jpeg / png / bmp under --images into a Parquet file (columns path,
    embedding). Unreadable files are skipped and listed; a rerun after an interruption resumes."""
    from reid_pipeline.inference.embed import embed_folder

    result = embed_folder(
        model,
        images,
        out,
        batch_size=batch_size,
        flip=flip,
        backend=backend,
        modality=modality,
        chunk_size=chunk_size,
        progress=not no_progress,
    )
    resumed = (
        f" (resumed: {result.resumed_chunks} part(s) already done)" if result.resumed_chunks else ""
    )
    click.echo(f"{result.count} embeddings -> {result.out}{resumed}")
    if result.skipped:
        click.echo(f"{len(result.skipped)} unreadable file(s) skipped:", err=True)
        for path, reason in result.skipped:
            click.echo(f"  {path}: {reason}", err=True)


@main_group.command("index")
@click.option("--embeddings", required=True, type=click.Path(), help="Embeddings file (.parquet).")
@click.option("--out", required=True, type=click.Path(), help="Index file (sidecar: OUT.json).")
@click.option(
    "--kind",
    default="flat",
    show_default=True,
    type=click.Choice(["flat", "ivf", "hnsw"]),
    help="flat: exact; ivf / hnsw: approximate, for large galleries (docs/inference.md).",
)
@click.option("--nlist", type=click.IntRange(min=1), help="ivf: k-means cells [4 sqrt(N)].")
@click.option("--nprobe", type=click.IntRange(min=1), help="ivf: cells scanned [nlist/64, >= 8].")
@click.option(
    "--hnsw-m", default=32, show_default=True, type=click.IntRange(min=2), help="hnsw: links."
)
@click.option(
    "--ef-search",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="hnsw: search breadth (higher: better recall, slower).",
)
@click.option(
    "--ef-construction",
    default=80,
    show_default=True,
    type=click.IntRange(min=1),
    help="hnsw: build breadth (higher: better graph, slower build).",
)
@_guarded
def index_command(
    *,
    embeddings: str,
    out: str,
    kind: str,
    nlist: int | None,
    nprobe: int | None,
    hnsw_m: int,
    ef_search: int,
    ef_construction: int,
) -> None:
    """Build a faiss index (inner product on L2-normalised embeddings) of a gallery's
    embeddings file; writes OUT and OUT.json (gallery paths, model, kind)."""
    from reid_pipeline.inference.index import build_index

    info = build_index(
        embeddings,
        out,
        kind=kind,
        nlist=nlist,
        nprobe=nprobe,
        hnsw_m=hnsw_m,
        ef_search=ef_search,
        ef_construction=ef_construction,
    )
    click.echo(f"{info.kind} index of {info.count} x {info.dim} -> {info.index_file}")


@main_group.command("search")
@click.option("--index", "index_file", required=True, type=click.Path(), help="Index file.")
@click.option(
    "--query",
    required=True,
    type=click.Path(),
    help="An image, a folder of images or an embeddings file (.parquet).",
)
@click.option("--out", required=True, type=click.Path(), help="Folder: results.csv, rank_list.png.")
@click.option("--top-k", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--rerank", is_flag=True, help="k-reciprocal re-ranking of the top 100 candidates.")
@click.option(
    "--model",
    default=None,
    type=click.Path(),
    help="The index's model at another path [the one recorded in the index sidecar].",
)
@_guarded
def search_command(
    *, index_file: str, query: str, out: str, top_k: int, rerank: bool, model: str | None
) -> None:
    """Top-k gallery matches of the queries: OUT/results.csv (query, rank, gallery, score)
    and OUT/rank_list.png."""
    from reid_pipeline.inference.search import search

    result = search(index_file, query, out, top_k=top_k, rerank=rerank, model=model)
    click.echo(f"{result.queries} queries -> {result.results_file}, {result.rank_list_file}")
    if result.skipped:
        click.echo(f"{len(result.skipped)} unreadable query file(s) skipped:", err=True)
        for path, reason in result.skipped:
            click.echo(f"  {path}: {reason}", err=True)


@main_group.command("export")
@click.option("--model", "model", required=True, type=click.Path(), help="MODEL_DIR.")
@click.option("--out", required=True, type=click.Path(), help="ONNX file to write.")
@_guarded
def export_command(model: str, out: str) -> None:
    """Export the model's eval graph to ONNX (dynamic batch; visible-infrared models take a
    `modality` input), checked against PyTorch with onnxruntime (max abs diff < 1e-4)."""
    from reid_pipeline.inference.model_dir import load_model_dir
    from reid_pipeline.inference.onnx_export import export_onnx

    net, spec = load_model_dir(model)
    diff = export_onnx(net, spec, out)
    click.echo(f"{out}: onnxruntime matches PyTorch (max abs diff {diff:.2g})")


def main(args: list[str] | None = None) -> Any:
    """``reid-pipeline [run] [kedro run options]``, or a subcommand (embed, index, ...)."""
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        return run_kedro(argv)
    return main_group.main(args=argv, prog_name="reid-pipeline")
