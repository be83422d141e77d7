"""``ensure_synthetic``: a generated folder records its options (synthetic.json); other options
regenerate it atomically with a WARNING, never a silent reuse."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from reid_pipeline.data.synthetic import STAMP_NAME, ensure_synthetic, read_stamp, writer
from reid_pipeline.errors import ConfigError

TINY = {"preset": "tiny", "seed": 1, "progress": False}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _marker(folder: Path) -> Path:
    marker = folder / "train" / "0000" / "marker.txt"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("from the first generation")
    return marker


def test_generates_when_missing_and_records_the_options(tmp_path: Path) -> None:
    folder = ensure_synthetic(tmp_path, "folders", TINY)
    assert folder == tmp_path / "synthetic_folders"
    assert (folder / "train").is_dir()
    stamp = read_stamp(folder)
    assert stamp["layout"] == "folders"
    assert stamp["requested"] == {"preset": "tiny", "seed": 1}  # progress is not content
    assert stamp["resolved"]["num_train_ids"] == 4
    assert stamp["resolved"]["seed"] == 1
    assert "workers" not in stamp["resolved"]
    assert json.loads((folder / STAMP_NAME).read_text()) == stamp


def test_same_options_reuse_the_folder_progress_and_workers_do_not_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = ensure_synthetic(tmp_path, "folders", TINY)
    marker = _marker(folder)
    with caplog.at_level(logging.INFO):
        for options in (
            TINY,
            {**TINY, "progress": True},
            {**TINY, "workers": 2},
            {"preset": "tiny", "seed": 1},  # same content, fewer keys
            {**TINY, "jpeg_quality": 92},  # the default, written out
        ):
            assert ensure_synthetic(tmp_path, "folders", options) == folder
    assert marker.exists()  # never regenerated
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"preset": "default", "num_ids": 6}, "num_test_ids 4 -> 3"),
        ({"seed": 2}, "seed 1 -> 2"),
        ({"image_size": [64, 32]}, "image_size [128, 64] -> [64, 32]"),
    ],
)
def test_other_options_regenerate_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: dict, difference: str
) -> None:
    folder = ensure_synthetic(tmp_path, "manifest", TINY)
    marker = folder / "marker.txt"
    marker.write_text("old")
    new = {**TINY, **change}
    with caplog.at_level(logging.WARNING):
        assert ensure_synthetic(tmp_path, "manifest", new) == folder
    assert not marker.exists()
    (warning,) = _warnings(caplog)
    assert "was generated with options {'preset': 'tiny', 'seed': 1}" in warning
    assert difference in warning
    assert "regenerating" in warning
    defaults = [("progress", False), ("preset", "default")]  # not recorded
    assert read_stamp(folder)["requested"] == {
        k: v for k, v in new.items() if (k, v) not in defaults
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic_manifest"]  # no leftovers


def test_a_folder_without_stamp_is_regenerated_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = ensure_synthetic(tmp_path, "market1501", TINY)
    (folder / STAMP_NAME).unlink()  # as made before the stamp existed
    marker = folder / "query" / "marker.txt"
    marker.write_text("old")
    with caplog.at_level(logging.WARNING):
        ensure_synthetic(tmp_path, "market1501", TINY)
    assert not marker.exists()
    (warning,) = _warnings(caplog)
    assert "no record of the options it was made with" in warning
    assert read_stamp(folder) is not None


def test_an_interrupted_regeneration_leaves_the_old_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = ensure_synthetic(tmp_path, "folders", TINY)
    marker = _marker(folder)
    old_stamp = read_stamp(folder)
    calls = {"n": 0}
    real_save = writer.save_image

    def interrupted(array, path, quality):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        real_save(array, path, quality)

    monkeypatch.setattr(writer, "save_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(tmp_path, "folders", {**TINY, "seed": 7})
    assert marker.read_text() == "from the first generation"
    assert read_stamp(folder) == old_stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic_folders"]
    monkeypatch.setattr(writer, "save_image", real_save)
    ensure_synthetic(tmp_path, "folders", {**TINY, "seed": 7})  # the next run completes it
    assert read_stamp(folder)["resolved"]["seed"] == 7
    assert not marker.exists()


def test_bad_options_fail_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown synthetic option\(s\) \['colour'\]"):
        ensure_synthetic(tmp_path, "folders", {"colour": "red"})
    with pytest.raises(ConfigError, match="synthetic 'folders' options: unknown preset 'huge'"):
        ensure_synthetic(tmp_path, "folders", {"preset": "huge"})
    with pytest.raises(ConfigError, match="seed must be >= 0"):
        ensure_synthetic(tmp_path, "folders", {"seed": -1})
    with pytest.raises(ConfigError, match="unknown layout 'market'"):
        ensure_synthetic(tmp_path, "market", {})
    assert list(tmp_path.iterdir()) == []
