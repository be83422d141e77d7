"""Each command end to end through a subprocess (the installed ``reid-pipeline`` script), one-line
errors with a non-zero exit code, and an ``embed`` killed mid-run that resumes to the same file."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reid_pipeline.inference import embed_folder, read_embeddings

from .conftest import write_images

SCRIPT = Path(sys.executable).with_name("reid-pipeline")
ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}


def _run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(SCRIPT), *args],
        check=False,
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def _last(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.slow
def test_embed_index_search_export_commands(model_dir: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "gallery", 6)
    (tmp_path / "gallery" / "bad.png").write_bytes(b"\x89PNG broken")
    done = _run(
        "embed",
        "--model",
        str(model_dir),
        "--images",
        "gallery",
        "--out",
        "g.parquet",
        "--batch-size",
        "4",
        "--flip",
        "--no-progress",
        cwd=tmp_path,
    )
    assert "6 embeddings" in done.stdout
    assert "bad.png" in done.stderr
    _run(
        "index",
        "--embeddings",
        "g.parquet",
        "--out",
        "g.index",
        "--kind",
        "hnsw",
        "--ef-search",
        "24",
        "--ef-construction",
        "40",
        cwd=tmp_path,
    )
    sidecar = json.loads((tmp_path / "g.index.json").read_text())
    assert (sidecar["ef_search"], sidecar["ef_construction"]) == (24, 40)
    _run(
        "search",
        "--index",
        "g.index",
        "--query",
        "gallery",
        "--out",
        "res",
        "--top-k",
        "2",
        "--rerank",
        cwd=tmp_path,
    )
    with (tmp_path / "res" / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["query", "rank", "gallery", "score"]
    assert len(rows) == 12
    assert all(r["query"] == r["gallery"] for r in rows if r["rank"] == "1")
    assert (tmp_path / "res" / "rank_list.png").is_file()
    done = _run("export", "--model", str(model_dir), "--out", "m.onnx", cwd=tmp_path)
    assert "max abs diff" in done.stdout
    _run(
        "embed",
        "--model",
        "m.onnx",
        "--images",
        "gallery",
        "--out",
        "o.parquet",
        "--backend",
        "onnxruntime",
        "--no-progress",
        cwd=tmp_path,
    )
    assert read_embeddings(tmp_path / "o.parquet")[0] == read_embeddings(tmp_path / "g.parquet")[0]


def test_errors_are_one_line_with_a_non_zero_exit(tmp_path: Path) -> None:
    done = _run(
        "search",
        "--index",
        "missing.index",
        "--query",
        "q",
        "--out",
        "o",
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    # the last line (torch may print an import-time warning of its own before it)
    assert _last(done.stderr) == "error: index file 'missing.index' does not exist"
    assert "Traceback" not in done.stderr
    write_images(tmp_path / "images", 1)
    done = _run(
        "embed",
        "--model",
        "nowhere",
        "--images",
        "images",
        "--out",
        "e.parquet",
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    assert _last(done.stderr).startswith("error: model folder 'nowhere' does not exist")
    assert "Traceback" not in done.stderr
    done = _run("--help", cwd=tmp_path)
    for command in ("embed", "index", "search", "export", "run"):
        assert command in done.stdout
    done = _run("embed", "--help", cwd=tmp_path)
    assert "--backend [torch|onnxruntime]" in done.stdout


@pytest.mark.slow
def test_a_killed_embed_resumes_to_the_same_file(model_dir: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_images(images, 120, seed=5)
    out = tmp_path / "killed.parquet"
    parts = tmp_path / "killed.parquet.parts"
    proc = subprocess.Popen(
        [
            str(SCRIPT),
            "embed",
            "--model",
            str(model_dir),
            "--images",
            str(images),
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--chunk-size",
            "2",
            "--no-progress",
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(parts.glob("part-*.parquet"))) < 3:
            assert proc.poll() is None, "embed ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    done_parts = len(list(parts.glob("part-*.parquet")))
    assert 3 <= done_parts < 60
    resumed = embed_folder(model_dir, images, out, batch_size=2, chunk_size=2, progress=False)
    assert resumed.resumed_chunks >= 3
    whole = embed_folder(
        model_dir, images, tmp_path / "whole.parquet", batch_size=2, chunk_size=2, progress=False
    )
    assert whole.resumed_chunks == 0
    assert resumed.count == whole.count == 120
    assert out.read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    assert not parts.exists()
