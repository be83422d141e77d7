"""Draw the README's picture of the embedded synthetic data: a few identities per camera.

    python scripts/synthetic_samples.py docs/synthetic_samples.png

Generates the two default layouts (Market-1501 and SYSU-MM01, seed 0, the ``tiny`` preset
with 2-3 images per camera: a few seconds) into a temporary folder, reads them back with the
project's loaders and draws rows of identities: visible crops from several cameras, then
SYSU-MM01 identities with their visible and infrared crops side by side.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

from reid_pipeline.data import generate_synthetic, load_dataset


def _by_pid(records, per_pid: int, pids: int, key) -> list[list]:
    groups: dict[int, list] = defaultdict(list)
    for record in sorted(records, key=key):
        groups[record.pid].append(record)
    rows = []
    for pid in sorted(groups)[:pids]:
        chosen, seen = [], set()
        for record in groups[pid]:  # one crop per (camera, modality) first, then the rest
            if (record.camid, record.modality) not in seen:
                seen.add((record.camid, record.modality))
                chosen.append(record)
        chosen += [r for r in groups[pid] if r not in chosen]
        rows.append(chosen[:per_pid])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-id", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        market = load_dataset(
            "market1501",
            generate_synthetic(
                tmp, "market1501", preset="tiny", images_per_camera=(2, 3), progress=False
            ),
        )
        sysu = load_dataset(
            "sysu_mm01",
            generate_synthetic(
                tmp, "sysu_mm01", preset="tiny", images_per_camera=(2, 3), progress=False
            ),
        )
        rows = [("Market-1501 layout", r) for r in _by_pid(market.train, args.per_id, 3, str)]
        rows += [
            ("SYSU-MM01 layout", r)
            for r in _by_pid(sysu.train, args.per_id, 3, lambda r: (r.modality, r.camid, r.path))
        ]
        fig, axes = plt.subplots(
            len(rows), args.per_id, figsize=(args.per_id * 0.9, len(rows) * 1.75)
        )
        for i, (title, records) in enumerate(rows):
            for j in range(args.per_id):
                ax = axes[i][j]
                ax.axis("off")
                if j < len(records):
                    r = records[j]
                    ax.imshow(Image.open(r.path).convert("RGB"))
                    ax.set_title(f"cam{r.camid + 1} {'IR' if r.modality else 'vis'}", fontsize=6)
            axes[i][0].text(
                -0.15, 0.5, f"{title}\nid {records[0].pid}", fontsize=6, rotation=90,
                va="center", ha="right", transform=axes[i][0].transAxes,
            )  # fmt: skip
        fig.tight_layout()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
