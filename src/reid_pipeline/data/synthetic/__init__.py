"""Synthetic pedestrians written in the real ReID dataset layouts (the project's embedded data).

``generate_synthetic(root, layout, **options) -> Path`` writes ``root/<the dataset's own folder>``
(``Market-1501-v15.09.15``, ``DukeMTMC-reID``, ``cuhk03-np``, ``MSMT17_V1`` / ``MSMT17_V2``,
``SYSU-MM01``, ``RegDB``, ``LLCM``) with the real folder structure, file names, split / index
files, junk and distractor files, so the loaders read it exactly like a real download. Layouts:
``market1501``, ``dukemtmc``, ``cuhk03`` (both ``detected`` and ``labeled``), ``msmt17``
(``version`` v1 | v2), ``sysu_mm01``, ``regdb``, ``llcm``, and the two own-data formats
``folders`` (``synthetic_folders/``) and ``manifest`` (``synthetic_manifest/``), drawn from the
Market-1501 persons. Every layout is described in docs/datasets.md.

``ensure_synthetic(root, name, options) -> Path`` (ensure.py) generates a dataset when missing and
regenerates it, atomically and with a WARNING, when the ``synthetic.json`` stamp inside the
folder records other options (``progress`` / ``workers`` / ``overwrite`` do not count).

Options (keyword-only; ``None`` = the preset's value; all validated with a clear ValueError):

- ``seed``: int >= 0. Identical options give identical bytes; every image has its own generator
  derived from ``(seed, dataset, pid, camera, index)``, independent of order and of ``workers``.
- ``preset``: ``"default"`` (sized for the CPU demo: ~1,500 training images, a few hundred
  queries, ~1-1.5k gallery images for market1501 / sysu_mm01) or ``"tiny"`` (a few ids, for
  tests, well under a second).
- ``num_ids`` (total, split by the layout's usual train share) or ``num_train_ids`` /
  ``num_test_ids``: identities per split (RegDB: ids are split in half in each of its 10 trials).
- ``images_per_camera``: (min, max) images per identity per camera (RegDB: per modality).
- ``image_size``: (height, width); default the dataset's usual crop (128x64; LLCM 128x48).
- ``occlusion_prob``: probability that a crop is partly covered by a box or another pedestrian.
- ``blur``: maximum extra Gaussian blur sigma in pixels (at 128 rows), on top of each camera's.
- ``illumination``: (low, high) range of the per-image illumination gain.
- ``attribute_sharing``: 0..1; 0 draws coarse colours uniformly, 0.5 with real-world frequencies,
  1 makes a few colours dominate so that fine details decide identity.
- ``num_distractors``: Market ``0000`` images / Duke gallery-only identities.
- ``num_junk``: Market ``-1`` images.
- ``version``: msmt17 only, ``"v1"`` or ``"v2"``.
- ``jpeg_quality``: 1..100 for .jpg layouts.
- ``workers``: processes rendering images (default 1); the output does not depend on it.
- ``overwrite``: replace an existing dataset folder (after the new one is complete).
- ``progress``: show a rich progress bar.

Modules: identity.py (attributes), scene.py (cameras, per-image scenes), raster.py (numpy
rasteriser), figure.py (the pedestrian's display list), render.py (background, camera, visible
and infrared), plan.py (jobs), layouts_single.py / layouts_vi.py (one planner per layout),
options.py (presets, validation), writer.py (atomic writing, workers, progress), stamp.py
(the options stamp, ``ensure_synthetic``).

Speed (benchmarks/bench_synthetic.py, 2-core shared machine, load ~2): 128x64 Market crops take
~2.3 ms to render and ~3.3 ms each through the whole writer including JPEG encoding and writing
(~300 images/s, one worker); the numpy rasteriser is on par with PIL ImageDraw drawing the same
figures (which does not anti-alias).
"""

from __future__ import annotations

from reid_pipeline.data.synthetic.ensure import ensure_synthetic
from reid_pipeline.data.synthetic.options import LAYOUTS, PRESETS, SyntheticOptions, resolve_options
from reid_pipeline.data.synthetic.plan import ImageJob, Plan, RenderSettings, render_job
from reid_pipeline.data.synthetic.stamp import STAMP_NAME, read_stamp
from reid_pipeline.data.synthetic.writer import build_plan, generate_synthetic, render_settings

__all__ = [
    "LAYOUTS",
    "PRESETS",
    "STAMP_NAME",
    "ImageJob",
    "Plan",
    "RenderSettings",
    "SyntheticOptions",
    "build_plan",
    "ensure_synthetic",
    "generate_synthetic",
    "read_stamp",
    "render_job",
    "render_settings",
    "resolve_options",
]
