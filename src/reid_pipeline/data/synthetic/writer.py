"""``generate_synthetic``: plan a layout, render its images (optionally in worker processes) and
write the dataset atomically.

Atomic: everything is written into a hidden temporary sibling ``root/.<folder>.tmp-*`` and renamed
to ``root/<folder>`` only when complete, so an interrupted or failed run never leaves a half
dataset that looks complete (the temporary folder is removed on failure). An existing dataset
folder is an error unless ``overwrite=True``; it is then replaced only after the new one is done.
The folder records its options in ``synthetic.json`` (stamp.py), which ``ensure_synthetic``
compares before reusing it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

from PIL import Image

from reid_pipeline.data.synthetic.layouts_single import (
    plan_cuhk03,
    plan_dukemtmc,
    plan_folders,
    plan_manifest,
    plan_market1501,
    plan_msmt17,
)
from reid_pipeline.data.synthetic.layouts_vi import plan_llcm, plan_regdb, plan_sysu_mm01
from reid_pipeline.data.synthetic.options import SyntheticOptions, resolve_options
from reid_pipeline.data.synthetic.plan import ImageJob, Plan, RenderSettings, render_job
from reid_pipeline.data.synthetic.stamp import make_stamp, write_stamp

PLANNERS: dict[str, Callable[[SyntheticOptions], Plan]] = {
    "market1501": plan_market1501,
    "dukemtmc": plan_dukemtmc,
    "cuhk03": plan_cuhk03,
    "msmt17": plan_msmt17,
    "sysu_mm01": plan_sysu_mm01,
    "regdb": plan_regdb,
    "llcm": plan_llcm,
    "folders": plan_folders,
    "manifest": plan_manifest,
}
_CHUNK = 64


def build_plan(options: SyntheticOptions) -> Plan:
    return PLANNERS[options.layout](options)


def render_settings(options: SyntheticOptions) -> RenderSettings:
    return RenderSettings(
        seed=options.seed,
        stream=options.spec.stream,
        size=options.image_size,
        sharing=options.attribute_sharing,
        occlusion_prob=options.occlusion_prob,
        blur=options.blur,
        illumination=options.illumination,
        jpeg_quality=options.jpeg_quality,
    )


def save_image(array, path: str | os.PathLike, jpeg_quality: int) -> None:
    """Encode by extension: .jpg (baseline JPEG), .png (fast zlib level), .bmp (24-bit)."""
    image = Image.fromarray(array)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".jpg":
        image.save(path, format="JPEG", quality=jpeg_quality)
    elif ext == ".png":
        image.save(path, format="PNG", compress_level=1)
    elif ext == ".bmp":
        image.save(path, format="BMP")
    else:
        raise ValueError(f"cannot encode {path}: expected .jpg, .png or .bmp")


def write_chunk(jobs: Sequence[ImageJob], settings: RenderSettings, folder: str) -> int:
    """Render and save ``jobs`` under ``folder`` (runs in a worker process when workers > 1)."""
    for job in jobs:
        save_image(
            render_job(job, settings), os.path.join(folder, job.relpath), settings.jpeg_quality
        )
    return len(jobs)


@contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _write_plan(
    plan: Plan, settings: RenderSettings, folder: Path, *, workers: int, progress: bool, label: str
) -> None:
    for rel in {os.path.dirname(j.relpath) for j in plan.jobs} | {
        os.path.dirname(r) for r in (*plan.texts, *plan.binaries, *plan.copies)
    }:
        (folder / rel).mkdir(parents=True, exist_ok=True)
    for rel, text in plan.texts.items():
        (folder / rel).write_text(text, encoding="ascii", newline="\n")
    for rel, data in plan.binaries.items():
        (folder / rel).write_bytes(data)
    chunks = [plan.jobs[i : i + _CHUNK] for i in range(0, len(plan.jobs), _CHUNK)]
    with _progress(progress, len(plan.jobs), label) as advance:
        if workers == 1 or len(chunks) <= 1:
            for chunk in chunks:
                advance(write_chunk(chunk, settings, str(folder)))
        else:
            context = get_context("spawn")  # no fork of a process that may hold torch threads
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                pending = {pool.submit(write_chunk, c, settings, str(folder)) for c in chunks}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        advance(future.result())  # re-raises a worker's exception here
    for rel, source in plan.copies.items():
        shutil.copyfile(folder / source, folder / rel)


def generate_synthetic(
    root: str | os.PathLike,
    layout: str,
    *,
    seed: int = 0,
    preset: str = "default",
    num_ids: int | None = None,
    num_train_ids: int | None = None,
    num_test_ids: int | None = None,
    images_per_camera: tuple[int, int] | None = None,
    image_size: tuple[int, int] | None = None,
    occlusion_prob: float | None = None,
    blur: float | None = None,
    illumination: tuple[float, float] | None = None,
    attribute_sharing: float | None = None,
    num_distractors: int | None = None,
    num_junk: int | None = None,
    version: str | None = None,
    jpeg_quality: int = 92,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a synthetic dataset in the real layout ``layout`` under ``root``; return its folder.

    See the package docstring for the meaning of every option. Raises ``ValueError`` for a bad
    option and ``FileExistsError`` when the dataset folder exists and ``overwrite`` is False.
    """
    requested = dict(
        preset=preset,
        seed=seed,
        num_ids=num_ids,
        num_train_ids=num_train_ids,
        num_test_ids=num_test_ids,
        images_per_camera=images_per_camera,
        image_size=image_size,
        occlusion_prob=occlusion_prob,
        blur=blur,
        illumination=illumination,
        attribute_sharing=attribute_sharing,
        num_distractors=num_distractors,
        num_junk=num_junk,
        version=version,
        jpeg_quality=jpeg_quality,
        workers=workers,
    )
    options = resolve_options(layout, **requested)
    defaults = {"preset": "default", "seed": 0, "jpeg_quality": 92, "workers": 1}
    stamp = make_stamp(
        options, {k: v for k, v in requested.items() if v is not None and v != defaults.get(k)}
    )
    root = Path(root)
    final = root / options.folder
    if (final.exists() or final.is_symlink()) and not overwrite:
        raise FileExistsError(
            f"{final} already exists; pass overwrite=True to replace it (it is replaced only "
            "after the new dataset is complete)"
        )
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"root {root} exists and is not a directory")
    plan = build_plan(options)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{options.folder}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # default permissions (mkdtemp would leave the dataset private, 0700)
    try:
        _write_plan(
            plan,
            render_settings(options),
            tmp,
            workers=options.workers,
            progress=progress,
            label=f"synthetic {layout}",
        )
        write_stamp(tmp, stamp)
        old = None
        if final.exists() or final.is_symlink():
            old = root / f".{options.folder}.old-{uuid.uuid4().hex[:8]}"
            final.rename(old)
        try:
            tmp.rename(final)
        except BaseException:
            if old is not None:
                old.rename(final)
            raise
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
