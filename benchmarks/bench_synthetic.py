"""Speed of the synthetic generator: the numpy rasteriser against PIL ImageDraw drawing the same
figures, the whole renderer, encoding, and the full dataset writer, measured in one run.

    .venv/bin/python benchmarks/bench_synthetic.py [--layout market1501] [--images 300]
                                                   [--workers 1 2] [--skip-writer]

Reference (same run, same machine): PIL's ImageDraw (C) draws the identical display lists -
ellipses, rounded rectangles, polygons, capsules as a polygon plus two end discs, and two-tone
patterns pasted through a mask - onto the same canvas. PIL draws without anti-aliasing, ours
anti-aliases every edge; the table also reports how close the two pictures are (mean absolute
difference, 0-255) to show they are the same figure. Ratios > 1 mean ours is faster.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from reid_pipeline.data.synthetic import (
    build_plan,
    generate_synthetic,
    render_job,
    render_settings,
    resolve_options,
)
from reid_pipeline.data.synthetic.figure import person_ops
from reid_pipeline.data.synthetic.identity import cached_identity
from reid_pipeline.data.synthetic.raster import (
    Capsule,
    Ellipse,
    Paint,
    Polygon,
    RoundRect,
    draw_all,
)
from reid_pipeline.data.synthetic.scene import cached_camera, sample_scene, track_view
from reid_pipeline.data.synthetic.writer import save_image


def _display_lists(options, n: int) -> list[list]:
    """The person display lists of the first ``n`` images of a layout's plan."""
    settings = render_settings(options)
    h, w = options.image_size
    lists = []
    for job in build_plan(options).jobs[:n]:
        ident = cached_identity(options.seed, job.identity, options.attribute_sharing)
        camera = cached_camera(
            options.seed, settings.stream, job.camera, sensor="visible", low_light=False, place=None
        )
        rng = np.random.default_rng([options.seed, settings.stream, *job.key])
        scene = sample_scene(rng, camera, view=track_view(options.seed, job.identity, camera))
        ops = person_ops(
            ident,
            view=scene.view,
            facing=scene.facing,
            cx=scene.cx * w,
            foot=scene.foot * h,
            hp=max(scene.scale, 0.7) * h * ident.height,
            stride=scene.stride,
            swing=scene.swing,
        )
        lists.append(ops)
    return lists


def _rgb8(c) -> tuple[int, int, int]:
    return tuple(round(255 * min(max(v, 0.0), 1.0)) for v in c)  # type: ignore[return-value]


def _pil_shape(draw: ImageDraw.ImageDraw, shape, fill) -> None:
    if isinstance(shape, Ellipse):
        draw.ellipse(
            [shape.cx - shape.rx, shape.cy - shape.ry, shape.cx + shape.rx, shape.cy + shape.ry],
            fill=fill,
        )
    elif isinstance(shape, RoundRect):
        if shape.x1 - shape.x0 < 1 or shape.y1 - shape.y0 < 1:
            return
        r = min(shape.r, (shape.x1 - shape.x0) / 2, (shape.y1 - shape.y0) / 2)
        draw.rounded_rectangle([shape.x0, shape.y0, shape.x1, shape.y1], radius=r, fill=fill)
    elif isinstance(shape, Polygon):
        draw.polygon(list(shape.points), fill=fill)
    elif isinstance(shape, Capsule):
        dx, dy = shape.x1 - shape.x0, shape.y1 - shape.y0
        length = max(math.hypot(dx, dy), 1e-6)
        nx, ny = -dy / length, dx / length
        quad = [
            (shape.x0 + nx * shape.r0, shape.y0 + ny * shape.r0),
            (shape.x1 + nx * shape.r1, shape.y1 + ny * shape.r1),
            (shape.x1 - nx * shape.r1, shape.y1 - ny * shape.r1),
            (shape.x0 - nx * shape.r0, shape.y0 - ny * shape.r0),
        ]
        draw.polygon(quad, fill=fill)
        for x, y, r in ((shape.x0, shape.y0, shape.r0), (shape.x1, shape.y1, shape.r1)):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    else:
        raise TypeError(type(shape))


def _pattern_image(paint: Paint, size: tuple[int, int]) -> Image.Image:
    h, w = size
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
    value = paint.value(np.broadcast_to(xs, (h, w)), np.broadcast_to(ys, (h, w)), False)
    return Image.fromarray(np.clip(value * 255 + 0.5, 0, 255).astype(np.uint8))


def pil_draw_all(canvas: Image.Image, ops: list) -> None:
    """The reference: PIL ImageDraw drawing the same display list (patterns through a mask)."""
    draw = ImageDraw.Draw(canvas)
    for shape, paint in ops:
        if paint.pattern == "plain":
            _pil_shape(draw, shape, _rgb8(paint.rgb))
        else:
            mask = Image.new("L", canvas.size, 0)
            _pil_shape(ImageDraw.Draw(mask), shape, 255)
            canvas.paste(_pattern_image(paint, (canvas.size[1], canvas.size[0])), (0, 0), mask)


def _timed(fn, repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_raster(options, n: int) -> list[tuple[str, float, float, str]]:
    h, w = options.image_size
    lists = _display_lists(options, n)
    background = np.full((h, w, 3), 0.5, dtype=np.float32)

    def ours() -> list[np.ndarray]:
        out = []
        for ops in lists:
            canvas = background.copy()
            draw_all(canvas, ops)
            out.append(canvas)
        return out

    def reference() -> list[Image.Image]:
        out = []
        for ops in lists:
            canvas = Image.new("RGB", (w, h), (128, 128, 128))
            pil_draw_all(canvas, ops)
            out.append(canvas)
        return out

    t_ours, t_ref = _timed(ours), _timed(reference)
    diff = np.mean(
        [
            np.abs(np.clip(a * 255 + 0.5, 0, 255).astype(np.int16) - np.asarray(b, np.int16)).mean()
            for a, b in zip(ours(), reference(), strict=True)
        ]
    )
    n_ops = np.mean([len(o) for o in lists])
    note = f"{n_ops:.0f} primitives/figure; mean |ours - PIL| = {diff:.1f}/255"
    return [("rasterise figure: numpy (ours) vs PIL ImageDraw", t_ours / n, t_ref / n, note)]


def bench_render(options, n: int, tmp: Path) -> list[tuple[str, float, float, str]]:
    settings = render_settings(options)
    jobs = build_plan(options).jobs[:n]
    images = [render_job(job, settings) for job in jobs]  # warm the per-camera caches
    t_render = _timed(lambda: [render_job(job, settings) for job in jobs])
    ext = os.path.splitext(jobs[0].relpath)[1]
    paths = [tmp / f"{i}{ext}" for i in range(len(jobs))]

    def encode() -> None:
        for image, path in zip(images, paths, strict=True):
            save_image(image, path, options.jpeg_quality)

    t_encode = _timed(encode)
    return [
        ("render (background + figure + camera)", t_render / n, math.nan, "numpy only"),
        (f"encode + write {ext} (PIL)", t_encode / n, math.nan, f"{h_w(options)}"),
    ]


def h_w(options) -> str:
    return f"{options.image_size[0]}x{options.image_size[1]}"


def bench_writer(layout: str, workers: int, tmp: Path) -> tuple[str, float, float, str]:
    root = tmp / f"writer-{workers}"
    start = time.perf_counter()
    folder = generate_synthetic(root, layout, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    n = sum(1 for p in folder.rglob("*") if p.suffix in (".jpg", ".png", ".bmp"))
    shutil.rmtree(root)
    label = f"generate_synthetic({layout!r}, workers={workers})"
    return (label, seconds / n, math.nan, f"{n} images in {seconds:.1f} s = {n / seconds:.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="market1501")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-writer", action="store_true")
    args = parser.parse_args()
    options = resolve_options(args.layout)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows += bench_raster(options, args.images)
        rows += bench_render(options, args.images, tmp)
        if not args.skip_writer:
            rows += [bench_writer(args.layout, w, tmp) for w in args.workers]
    print(
        f"# synthetic generator, {args.layout} {h_w(options)}; {platform.processor() or ''} "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"| {'stage':<52} | ours ms/img | reference ms/img | speed-up | note")
    print(f"|{'-' * 54}|-------------|------------------|----------|-----")
    for label, ours, ref, note in rows:
        ref_text = f"{ref * 1e3:16.3f}" if not math.isnan(ref) else f"{'-':>16}"
        ratio = f"{ref / ours:7.2f}x" if not math.isnan(ref) else f"{'-':>8}"
        print(f"| {label:<52} | {ours * 1e3:11.3f} | {ref_text} | {ratio} | {note}")


if __name__ == "__main__":
    main()
