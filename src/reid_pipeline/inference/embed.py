"""``embed``: a folder of images (searched recursively) -> an embeddings Parquet file.

Output: columns ``path`` (string, relative to the folder, ``/``-separated, as found) and
``embedding`` (list<float32>, the eval-mode embedding, flip-averaged with ``flip``; not
normalised), one row per readable image in sorted path order, one row group per chunk. The
schema metadata records the model (``reid_pipeline.spec_sha256``, ``reid_pipeline.model_spec``,
``reid_pipeline.model``), the folder (``reid_pipeline.images_root``), ``flip``, ``modality``,
``backend`` and the files skipped as unreadable (``reid_pipeline.skipped``, JSON
``[[path, reason], ...]``).

Preprocessing is the training run's test transform: the project's decoder
(``data.torch_dataset.read_image``: OpenCV, a JPEG cut short refused) and
``data.transforms.eval_transform(height, width)``.

Memory stays flat: images are read, embedded and written one chunk (``chunk_size`` images) at a
time. Each finished chunk is a Parquet file in ``<out>.parts/`` (written atomically); a rerun of
the same command skips the chunks already there, and the final file is assembled from the parts
into a temporary file renamed onto ``out`` (it appears whole or not at all), after which the parts
are removed. A rerun with other settings (model, flip, modality, backend, batch or chunk size, or
another list of images) starts over. A chunk is embedded the same way whether or not the run was
interrupted, so a resumed run ends with the file an uninterrupted run writes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reid_pipeline.errors import ConfigError, DataError, ReidError
from reid_pipeline.inference.backends import Embedder, open_embedder
from reid_pipeline.io.digest import json_sha256

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
META = "reid_pipeline."
SCHEMA = pa.schema([("path", pa.string()), ("embedding", pa.list_(pa.float32()))])


@dataclass
class EmbedResult:
    out: Path
    count: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    resumed_chunks: int = 0


def list_images(folder: str | Path) -> list[str]:
    """Image files under ``folder`` (recursively; jpg, jpeg, png, bmp in any case), as sorted
    ``/``-separated paths relative to it."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist or is not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath).relative_to(root)
        for name in filenames:
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append((base / name).as_posix())
    return sorted(found)


def _decode(path: Path, transform: Any) -> np.ndarray:
    import cv2

    from reid_pipeline.data.torch_dataset import read_image

    try:
        image = read_image(str(path))
    except cv2.error as exc:
        raise DataError(f"image {str(path)!r} cannot be decoded ({exc})") from None
    return transform(image).numpy()  # (3, H, W) float32


def _decode_batch(
    root: Path, batch: Sequence[str], transform: Any
) -> tuple[list[str], list[np.ndarray], list[tuple[str, str]]]:
    """(paths decoded, their (3, H, W) arrays, [(path, reason)] skipped) of one batch."""
    kept: list[str] = []
    arrays: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    for rel in batch:
        try:
            arrays.append(_decode(root / rel, transform))
        except (ReidError, OSError, ValueError) as exc:
            skipped.append((rel, str(exc).split("; set `options:")[0]))
            continue
        kept.append(rel)
    return kept, arrays, skipped


def iter_embeddings(
    embedder: Embedder,
    root: Path,
    paths: Sequence[str],
    *,
    batch_size: int,
    flip: bool,
    modality: int | None,
) -> Iterator[tuple[list[str], np.ndarray, list[tuple[str, str]], int]]:
    """Per batch of ``paths``: (paths embedded, embeddings (n, D), [(path, reason)] skipped,
    number of paths consumed). The next batch is decoded in a background thread while the
    model embeds this one (OpenCV's decoder releases the GIL), so decoding costs no time of
    its own on a machine with a core to spare."""
    from concurrent.futures import ThreadPoolExecutor

    from reid_pipeline.data.transforms import eval_transform

    height, width = embedder.size
    transform = eval_transform(height, width)
    batches = [paths[lo : lo + batch_size] for lo in range(0, len(paths), batch_size)]
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-decode") as pool:
        pending = pool.submit(_decode_batch, root, batches[0], transform)
        for i, batch in enumerate(batches):
            kept, arrays, skipped = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(_decode_batch, root, batches[i + 1], transform)
            if arrays:
                feats = embedder(np.stack(arrays), modality, flip=flip)  # (n, D)
            else:
                feats = np.zeros((0, 0), dtype=np.float32)
            yield kept, feats, skipped, len(batch)


def _table(paths: list[str], feats: np.ndarray) -> pa.Table:
    dim = int(feats.shape[1]) if paths else 0
    offsets = pa.array(np.arange(len(paths) + 1, dtype=np.int32) * dim, pa.int32())
    values = pa.array(np.ascontiguousarray(feats, dtype=np.float32).reshape(-1), pa.float32())
    column = pa.ListArray.from_arrays(offsets, values)
    return pa.Table.from_arrays([pa.array(paths, pa.string()), column], schema=SCHEMA)


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``reid_pipeline.*`` metadata of an embeddings file (keys without the prefix; JSON
    values decoded)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"embeddings file {str(path)!r} does not exist")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file ({exc})") from None
    if schema.names[:2] != ["path", "embedding"]:
        raise DataError(f"{path}: expected columns path, embedding; got {schema.names}")
    out: dict[str, Any] = {}
    for key, value in (schema.metadata or {}).items():
        name = key.decode()
        if name.startswith(META):
            out[name[len(META) :]] = json.loads(value.decode())
    return out


def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """(paths, embeddings float32 (N, D), metadata) of an embeddings file."""
    meta = read_metadata(path)
    table = pq.read_table(path, columns=["path", "embedding"])
    paths = table.column("path").to_pylist()
    column = table.column("embedding").combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if not paths:
        raise DataError(f"{path} holds no embeddings")
    dim = len(values) // len(paths)
    lengths = column.value_lengths().to_numpy(zero_copy_only=False)
    if dim == 0 or not (lengths == dim).all():
        raise DataError(f"{path}: the embeddings do not all have the same length")
    return paths, values.reshape(len(paths), dim), meta


def embed_folder(
    model: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    batch_size: int = 64,
    flip: bool = False,
    backend: str = "torch",
    modality: str = "visible",
    chunk_size: int | None = None,
    progress: bool = True,
) -> EmbedResult:
    """Embed every image under ``images`` with ``model`` into ``out`` (see the module
    docstring). ``chunk_size``: images per part and row group (default ``16 * batch_size``)."""
    for name, value in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    chunk = chunk_size or 16 * batch_size
    root = Path(images)
    out = Path(out)
    paths = list_images(root)
    if not paths:
        raise DataError(f"image folder {str(root)!r} holds no jpg, jpeg, png or bmp file")
    embedder = open_embedder(model, backend)
    code = embedder.modality_code(modality)
    meta = {
        "spec_sha256": embedder.spec_hash,
        "model_spec": embedder.spec,
        "model": str(Path(embedder.source).resolve()),
        "images_root": str(root.resolve()),
        "flip": bool(flip),
        "modality": modality if embedder.cross_modality else None,
        "backend": embedder.backend,
    }
    state = {
        **meta,
        "batch_size": batch_size,
        "chunk_size": chunk,
        "images": json_sha256(paths),
    }
    parts = out.with_name(out.name + ".parts")
    state_file = parts / "state.json"
    if parts.exists():
        try:
            previous = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
        if previous != state:
            logger.warning(
                "%s was left by a run with other settings or images: starting over", parts
            )
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not state_file.exists():
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
        os.replace(tmp, state_file)

    from reid_pipeline.engine.progress import add_task, make_progress

    n_chunks = (len(paths) + chunk - 1) // chunk
    part_files = [parts / f"part-{i:06d}.parquet" for i in range(n_chunks)]
    resumed = sum(f.exists() for f in part_files)
    with make_progress(enabled=progress) as bar:
        task = add_task(bar, "embed", len(paths))
        for i, part in enumerate(part_files):
            chunk_paths = paths[i * chunk : (i + 1) * chunk]
            if part.exists():
                bar.update(task, advance=len(chunk_paths))
                continue
            kept: list[str] = []
            feats: list[np.ndarray] = []
            skipped: list[tuple[str, str]] = []
            for k, f, s, n in iter_embeddings(
                embedder, root, chunk_paths, batch_size=batch_size, flip=flip, modality=code
            ):
                kept += k
                if len(k):
                    feats.append(f)
                skipped += s
                bar.update(task, advance=n)
            table = _table(kept, np.concatenate(feats) if feats else np.zeros((0, 0), np.float32))
            table = table.replace_schema_metadata({"skipped": json.dumps(skipped)})
            _atomic_parquet(table, part)
    return _merge(part_files, parts, out, meta, resumed)


def _merge(
    part_files: list[Path], parts: Path, out: Path, meta: dict[str, Any], resumed: int
) -> EmbedResult:
    skipped: list[tuple[str, str]] = []
    for part in part_files:
        extra = pq.read_schema(part).metadata or {}
        skipped += [tuple(x) for x in json.loads(extra.get(b"skipped", b"[]"))]
    full = {**meta, "skipped": skipped}
    schema = SCHEMA.with_metadata(
        {f"{META}{k}": json.dumps(v, sort_keys=True) for k, v in full.items()}
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    count = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for part in part_files:
                table = pq.read_table(part).replace_schema_metadata(None)
                if table.num_rows:
                    writer.write_table(table.cast(schema))
                    count += table.num_rows
        if count == 0:
            raise DataError(
                f"no image under {meta['images_root']!r} could be read ({len(skipped)} skipped)"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    shutil.rmtree(parts, ignore_errors=True)
    return EmbedResult(out=out, count=count, skipped=skipped, resumed_chunks=resumed)


def embed_paths(
    embedder: Embedder,
    root: Path,
    paths: Sequence[str],
    *,
    batch_size: int = 64,
    flip: bool = False,
    modality: str = "visible",
) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """In memory (queries of a search): (paths embedded, embeddings (n, D), skipped)."""
    code = embedder.modality_code(modality)
    kept: list[str] = []
    feats: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    for k, f, s, _ in iter_embeddings(
        embedder, root, paths, batch_size=batch_size, flip=flip, modality=code
    ):
        kept += k
        if len(k):
            feats.append(f)
        skipped += s
    if not kept:
        raise DataError(f"no query image could be read ({skipped[0][1] if skipped else 'none'})")
    return kept, np.concatenate(feats), skipped
