"""``scripts/synthetic_samples.py`` (the README's picture of the synthetic data) keeps working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_draws_visible_and_infrared_rows(tmp_path: Path) -> None:
    out = tmp_path / "samples.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "synthetic_samples.py"), str(out), "--per-id", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(out) as image:
        width, height = image.size
        small = image.convert("RGB").resize((width // 8, height // 8))
    assert width >= 300
    assert height > width  # 6 rows of 4 crops: taller than wide
    # the picture is not blank: many distinct colours from the crops
    assert len(np.unique(np.asarray(small).reshape(-1, 3), axis=0)) > 500
