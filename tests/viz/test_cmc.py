"""The CMC plot helper: several labelled curves, a PNG that decodes at the expected size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_pipeline.evaluation import evaluate_rank
from reid_pipeline.viz.cmc import plot_cmc


def test_writes_a_png_of_the_expected_size_with_labelled_curves(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pids = rng.integers(0, 10, 60)
    dist = rng.random((20, 60))
    result = evaluate_rank(dist, pids[:20], pids, np.zeros(20), np.ones(60), max_rank=20)
    curves = {
        "model A": result,
        "model B": {"cmc": np.linspace(0.5, 1.0, 20), "mAP": 0.42},
        "bare": np.linspace(0.2, 0.9, 20),
    }
    out = tmp_path / "plots" / "cmc.png"
    fig = plot_cmc(curves, path=out, figsize=(6.0, 4.0), dpi=50, title="test")
    with Image.open(out) as img:
        img.load()
        assert img.format == "PNG"
        assert img.size == (300, 200)
        assert np.asarray(img.convert("L")).std() > 0  # something is drawn
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == f"model A (R1 {100 * result.cmc[0]:.1f}%, mAP {100 * result.mAP:.1f}%)"
    assert labels[1] == "model B (R1 50.0%, mAP 42.0%)"
    assert labels[2] == "bare (R1 20.0%)"
    assert len(fig.axes[0].get_lines()) == 3


def test_max_rank_truncates_the_axis() -> None:
    fig = plot_cmc({"a": np.linspace(0.1, 1, 50)}, max_rank=10)
    (line,) = fig.axes[0].get_lines()
    assert len(line.get_xdata()) == 10
    assert fig.axes[0].get_xlim() == (1.0, 10.0)


@pytest.mark.parametrize(
    ("curves", "kwargs", "message"),
    [
        ({}, {}, "non-empty mapping"),
        ({"a": [0.5, 0.4]}, {}, "non-decreasing"),
        ({"a": [[0.5]]}, {}, "1-D"),
        ({"a": {"mAP": 0.3}}, {}, "needs a 'cmc' entry"),
        ({"a": [0.5]}, {"max_rank": 0}, "max_rank must be"),
    ],
)
def test_bad_input(curves: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_cmc(curves, **kwargs)
