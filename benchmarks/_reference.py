"""Bench-time references: fast-reid's evaluators, fetched from PyPI and built in a scratch folder.

Nothing here is imported by the library and no fast-reid code is committed: ``fetch_fastreid``
runs ``pip download fastreid==1.4.0 --no-deps --no-binary :all:`` into a scratch folder (by default
``<tmp>/reid_pipeline_bench_refs``, reused across runs), unpacks the sdist, and
``load_rank_cy`` compiles its ``fastreid/evaluation/rank_cylib/rank_cy.pyx`` there with Cython
(the toolboxes' Cython evaluator, ``evaluate_cy``). ``load_python_rank`` and
``load_reference_rerank`` load the package's pure-Python modules from the same folder by path
(the per-query argsort loop ``eval_market1501`` and the standard numpy ``re_ranking``).

Also the shared synthetic problem generator and a peak-memory-measuring subprocess runner.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

FASTREID = "fastreid==1.4.0"
_EVAL = Path("fastreid/evaluation")


def scratch_dir(path: str | None = None) -> Path:
    d = Path(path) if path else Path(tempfile.gettempdir()) / "reid_pipeline_bench_refs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def fetch_fastreid(workdir: Path) -> Path:
    """Download and unpack the fastreid sdist into ``workdir``; return the unpacked root."""
    unpacked = next((p for p in workdir.glob("fastreid-*") if p.is_dir()), None)
    if unpacked is not None and (unpacked / _EVAL / "rank_cylib" / "rank_cy.pyx").is_file():
        return unpacked
    cmd = [sys.executable, "-m", "pip", "download", FASTREID, "--no-deps", "--no-binary", ":all:",
           "-d", str(workdir)]  # fmt: skip
    print(f"[reference] {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, capture_output=True)
    archive = next(workdir.glob("fastreid-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return next(p for p in workdir.glob("fastreid-*") if p.is_dir())


def _load_file(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_rank_cy(workdir: Path) -> Any:
    """fast-reid's Cython ``rank_cy`` module, compiled in ``workdir`` on first use."""
    root = fetch_fastreid(workdir)
    src = root / _EVAL / "rank_cylib"
    built = list(src.glob("rank_cy*.so"))
    if not built:
        script = textwrap.dedent(
            """
            import numpy as np
            from Cython.Build import cythonize
            from setuptools import Extension, setup
            ext = Extension("rank_cy", ["rank_cy.pyx"], include_dirs=[np.get_include()])
            setup(name="rank_cy_bench", ext_modules=cythonize([ext], quiet=True),
                  script_args=["build_ext", "--inplace"])
            """
        )
        print(f"[reference] compiling {src / 'rank_cy.pyx'} with Cython", flush=True)
        subprocess.run([sys.executable, "-c", script], cwd=src, check=True, capture_output=True)
        built = list(src.glob("rank_cy*.so"))
    return _load_file("rank_cy", built[0])


def load_python_rank(workdir: Path) -> ModuleType:
    """fast-reid's ``rank.py`` (its Cython import fails outside the package: pure Python)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _load_file("fastreid_rank_py", fetch_fastreid(workdir) / _EVAL / "rank.py")


def load_reference_rerank(workdir: Path) -> Any:
    """fast-reid's ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)``."""
    return _load_file("fastreid_rerank", fetch_fastreid(workdir) / _EVAL / "rerank.py").re_ranking


# --------------------------------------------------------------------------- synthetic data


def market_like_features(
    num_query: int,
    num_gallery: int,
    *,
    num_ids: int,
    dim: int,
    noise: float = 0.9,
    base_dim: int = 64,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Identity centres + camera bias + noise in ``base_dim`` dimensions, mapped isometrically
    into ``dim`` (a random orthonormal basis, so the ranking difficulty does not change with
    ``dim``, only the GEMM's cost), L2-normalised, float32. Noise 0.9 at Market size is about as
    separable as a trained baseline (R1 ~ 0.99, mAP ~ 0.89, mINP ~ 0.57). Gallery pid 0 plays
    Market's distractors; 6 cameras."""
    rng = np.random.default_rng(seed)
    base = min(base_dim, dim)
    centers = rng.standard_normal((num_ids, base), dtype=np.float32)
    cam_bias = 0.3 * rng.standard_normal((6, base), dtype=np.float32)
    basis = np.linalg.qr(rng.standard_normal((dim, base)))[0].T.astype(np.float32)  # (base, dim)
    out: dict[str, np.ndarray] = {}
    for part, n, low in (("q", num_query, 1), ("g", num_gallery, 0)):
        pids = rng.integers(low, num_ids, n)
        cams = rng.integers(0, 6, n)
        feats = np.empty((n, dim), dtype=np.float32)
        for s in range(0, n, 8192):  # chunked: keeps the generator's own peak memory small
            e = min(s + 8192, n)
            x = centers[pids[s:e]] + cam_bias[cams[s:e]]
            x += noise * rng.standard_normal((e - s, base), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            feats[s:e] = x @ basis
        out[f"{part}_feats"], out[f"{part}_pids"], out[f"{part}_camids"] = feats, pids, cams
    return out


# --------------------------------------------------------------------------- subprocess runs


def run_measured(code: str, *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it must ``print(json.dumps(result))`` last. Adds
    ``peak_rss_mb`` (``resource.getrusage`` of the child: its whole peak, inputs included)."""
    wrapper = code + textwrap.dedent(
        """
        import resource as _resource
        print("__PEAK__", _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stdout}\n{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    peak_kb = int(lines[-1].split()[1])
    result = json.loads(lines[-2])
    result["peak_rss_mb"] = peak_kb / 1024
    return result
