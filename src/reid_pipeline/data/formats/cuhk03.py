"""CUHK03-NP (the 767 / 700 "new protocol").

References: W. Li, R. Zhao, T. Xiao, X. Wang, "DeepReID: Deep Filter Pairing Neural Network for
Person Re-identification", CVPR 2014 (the images); Z. Zhong, L. Zheng, D. Cao, S. Li,
"Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017 (the NP split, released
as Market-style folders).

Layout: ``cuhk03-np/{detected,labeled}/{bounding_box_train, query, bounding_box_test}/``.
File name ``0001_c1_1.png``: pid, camera 1..2, index; parsed with ``([-\\d]+)_c(\\d)``.
``variant`` picks the boxes: ``"detected"`` (DPM detector, the default) or ``"labeled"`` (hand
drawn); ``Splits.info["variant"]`` says which was used.

Statistics (1,467 ids, 2 cameras per pair):
    variant    train (767 ids)  query (700 ids)  gallery (700 ids)
    labeled     7,368            1,400            5,328
    detected    7,365            1,400            5,332
"""

from __future__ import annotations

from pathlib import Path

from reid_pipeline.data.loaders import find_dataset_dir, load_market_style, require_dir
from reid_pipeline.data.records import Splits

DATASET_DIR = "cuhk03-np"
VARIANTS = ("detected", "labeled")
NUM_CAMERAS = 2
MAX_PID = 1467


def load(root: Path, *, variant: str = "detected") -> Splits:
    if variant not in VARIANTS:
        raise ValueError(f"option 'variant' must be one of {list(VARIANTS)}, got {variant!r}")
    dataset_dir = find_dataset_dir(root, dirname=DATASET_DIR, markers=VARIANTS)
    variant_dir = require_dir(
        dataset_dir / variant,
        expected=f"{variant}/ with bounding_box_train/, query/ and bounding_box_test/",
    )
    train, query, gallery = load_market_style(variant_dir, num_cameras=NUM_CAMERAS, max_pid=MAX_PID)
    return Splits(
        name="cuhk03",
        root=str(dataset_dir),
        train=train,
        query=query,
        gallery=gallery,
        info={"num_cameras": NUM_CAMERAS, "variant": variant},
    )
