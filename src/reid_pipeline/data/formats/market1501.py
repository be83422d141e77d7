"""Market-1501.

Reference: L. Zheng, L. Shen, L. Tian, S. Wang, J. Wang, Q. Tian, "Scalable Person
Re-identification: A Benchmark", ICCV 2015.

Layout: ``Market-1501-v15.09.15/{bounding_box_train, query, bounding_box_test}/`` (``gt_bbox``,
``gt_query`` and ``Thumbs.db`` files are ignored).
File name ``0001_c1s1_001051_00.jpg``: pid, camera 1..6 (``c1``), sequence, frame, box; parsed with
``([-\\d]+)_c(\\d)``. pid -1 marks junk boxes (dropped everywhere); pid 0 marks distractors (kept in
the gallery as negatives).

Statistics after dropping junk (1,501 ids, 6 cameras):
    train    751 ids  12,936 images
    query    750 ids   3,368 images
    gallery  751 ids  15,913 images (ids incl. 0; 19,732 before dropping junk)
"""

from __future__ import annotations

from pathlib import Path

from reid_pipeline.data.loaders import find_dataset_dir, load_market_style
from reid_pipeline.data.records import Splits

DATASET_DIR = "Market-1501-v15.09.15"
NUM_CAMERAS = 6
MAX_PID = 1501


def load(root: Path) -> Splits:
    dataset_dir = find_dataset_dir(
        root, dirname=DATASET_DIR, markers=("bounding_box_train", "bounding_box_test")
    )
    train, query, gallery = load_market_style(dataset_dir, num_cameras=NUM_CAMERAS, max_pid=MAX_PID)
    return Splits(
        name="market1501",
        root=str(dataset_dir),
        train=train,
        query=query,
        gallery=gallery,
        info={"num_cameras": NUM_CAMERAS},
    )
