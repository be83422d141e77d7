"""P1 / P2: ranking metrics against the toolboxes' evaluators, and at MSMT17 scale from features.

    python benchmarks/bench_rank.py                 # P1 at Market size (3,368 x 15,913)
    python benchmarks/bench_rank.py --scale 0.5     # P1, a smaller problem
    python benchmarks/bench_rank.py --msmt          # P2: 11,659 x 82,161, D=2048, from features
    python benchmarks/bench_rank.py --msmt --dim 256 --scale 0.25
    python benchmarks/bench_rank.py --gemm          # numpy vs torch GEMM, and torch's import cost

P1 ranks the same float32 distance matrix with ``evaluate_rank``, fast-reid's Cython
``rank_cy.evaluate_cy`` (built from the PyPI sdist in a scratch folder, see ``_reference.py``) and
fast-reid's plain per-query argsort loop (``eval_market1501``), checks that CMC / AP / INP agree on
every query, and prints times as ratios - plus how far ``evaluate_rank`` is from the floor of
reading the matrix once (``distmat.max()``). The matrix comes from synthetic embeddings as
separable as a trained baseline (``market_like_features``) and, as a worst case, from uniform
random distances (every query's last match lies near the end of its list).

P2 runs ``evaluate_from_features`` in a child process and reports its wall time, its peak RSS
(``getrusage``: the whole process, the features included) and the ratio to the floor - the
distance GEMM alone, streamed the same way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._reference import (
    load_python_rank,
    load_rank_cy,
    market_like_features,
    run_measured,
    scratch_dir,
)

from reid_pipeline.evaluation import evaluate_rank, pairwise_distance

MARKET = (3368, 15913, 751)
MSMT = (11659, 82161, 3060)


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


def tied_queries(dist: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray) -> np.ndarray:
    """Queries where a same-pid gallery item shares its distance with another gallery item: the
    references' unstable ``np.argsort`` orders those ties arbitrarily (ours: by gallery index)."""
    tied = np.zeros(len(dist), dtype=bool)
    for i in range(len(dist)):
        row = np.sort(dist[i])
        vals = dist[i, g_pids == q_pids[i]]
        count = np.searchsorted(row, vals, side="right") - np.searchsorted(row, vals, side="left")
        tied[i] = bool(np.any(count > 1))
    return tied


def stable_loop(dist: np.ndarray, ids: tuple, rows: np.ndarray) -> tuple[list, list]:
    """AP / INP of the queries ``rows`` by the definition with a stable argsort (for tied rows)."""
    q_pids, g_pids, q_cams, g_cams = ids
    aps, inps = [], []
    for i in rows:
        order = np.argsort(dist[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i]))
        hits = (g_pids[order][keep] == q_pids[i]).astype(float)
        if not hits.any():
            continue
        cum = np.cumsum(hits)
        aps.append(float((cum / np.arange(1, len(hits) + 1) * hits).sum() / hits.sum()))
        inps.append(float(hits.sum() / (np.flatnonzero(hits)[-1] + 1)))
    return aps, inps


def _compare(ours: object, ref: tuple, tied: np.ndarray) -> str:
    """'max diff CMC / AP / INP' over queries without ties."""
    cmc, ap, inp = ref
    valid = ours.valid_indices  # type: ignore[attr-defined]
    clean = ~tied[valid]
    return (
        f"{_diff(ours.cmc, cmc):.1e} / {_diff(ours.all_AP[clean], np.asarray(ap)[clean]):.1e} / "  # type: ignore[attr-defined]
        f"{_diff(ours.all_INP[clean], np.asarray(inp)[clean]):.1e}"  # type: ignore[attr-defined]
    )


def bench_p1(args: argparse.Namespace) -> None:
    nq, ng, nid = (max(10, round(v * args.scale)) for v in MARKET)
    data = market_like_features(nq, ng, num_ids=nid, dim=64, seed=0)  # ranking: dim-free
    problems = {
        "embeddings (trained-like)": pairwise_distance(data["q_feats"], data["g_feats"]),
        "uniform random (worst case)": np.random.default_rng(1).random((nq, ng), dtype=np.float32),
    }
    ids = (data["q_pids"], data["g_pids"], data["q_camids"], data["g_camids"])
    ref_dir = scratch_dir(args.ref_dir)
    rank_cy = load_rank_cy(ref_dir)
    loop = load_python_rank(ref_dir)
    print(f"\nP1  {nq} queries x {ng} gallery, float32, max_rank 50 (median of repeats)\n")
    header = (
        "| distances | method | seconds | ratio to evaluate_rank | max abs diff CMC / AP / INP |"
    )
    print(header)
    print("|---|---|---|---|---|")
    notes = []
    for name, dist in problems.items():
        t_floor, _ = _time(lambda d=dist: d.max(), max(3, args.repeats))
        t_ours, ours = _time(lambda d=dist: evaluate_rank(d, *ids, max_rank=50), args.repeats)
        t_cy, ref_cy = _time(
            lambda d=dist: rank_cy.evaluate_cy(d, *ids, 50), max(1, args.repeats // 2)
        )
        tied = tied_queries(dist, data["q_pids"], data["g_pids"])
        rows = [("evaluate_rank (ours)", t_ours, "1.00x", "-")]
        rows.append(("fast-reid rank_cy.evaluate_cy (Cython)", t_cy, f"{t_cy / t_ours:.1f}x",
                     _compare(ours, ref_cy, tied)))  # fmt: skip
        if not args.no_loop:
            t_loop, ref_loop = _time(lambda d=dist: loop.eval_market1501(d, *ids, 50), 1)
            rows.append(("per-query argsort loop (eval_market1501)", t_loop,
                         f"{t_loop / t_ours:.1f}x", _compare(ours, ref_loop, tied)))  # fmt: skip
        rows.append(("floor: read the matrix once (max)", t_floor, f"{t_floor / t_ours:.2f}x", "-"))
        for method, t, ratio, d in rows:
            print(f"| {name} | {method} | {t:.3f} | {ratio} | {d} |")
        print(
            f"|   | summary | | Cython / ours = {t_cy / t_ours:.1f}x, ours / floor = "
            f"{t_ours / t_floor:.1f}x | R1 {ours.cmc[0]:.3f} mAP {ours.mAP:.3f} mINP "
            f"{ours.mINP:.3f} |"
        )
        tied_valid = np.flatnonzero(tied[ours.valid_indices])
        aps, inps = stable_loop(dist, ids, ours.valid_indices[tied_valid])
        notes.append(
            f"{name}: {len(tied_valid)} queries have a relevant item at exactly the distance of "
            "another gallery item (float32 ties; the references' unstable argsort orders those "
            "arbitrarily, so the AP / INP columns above compare the other queries); on them "
            "evaluate_rank equals a stable-argsort loop to "
            f"{_diff(ours.all_AP[tied_valid], aps):.1e} (AP) / "
            f"{_diff(ours.all_INP[tied_valid], inps):.1e} (INP)"
        )
    print()
    for note in notes:
        print("-", note)


P2_CHILD = """
import json, sys, time, resource
sys.path.insert(0, {root!r})
import numpy as np
from benchmarks._reference import market_like_features
from reid_pipeline.evaluation import evaluate_from_features
from reid_pipeline.evaluation.distance import as_features, stream_distance_blocks
d = market_like_features({nq}, {ng}, num_ids={nid}, dim={dim}, seed=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
r = evaluate_from_features(d["q_feats"], d["g_feats"], d["q_pids"], d["g_pids"], d["q_camids"],
                           d["g_camids"], metric="cosine", chunk_size={chunk})
t_eval = time.perf_counter() - t
q, g = as_features(d["q_feats"], name="q"), as_features(d["g_feats"], name="g")
t = time.perf_counter()
for _ in stream_distance_blocks(q, g, metric="cosine", chunk_size={chunk}):
    pass
t_gemm = time.perf_counter() - t
feats_mb = (d["q_feats"].nbytes + d["g_feats"].nbytes) / 2**20
print(json.dumps(dict(t_eval=t_eval, t_gemm=t_gemm, rss_before_eval_mb=before, feats_mb=feats_mb,
                      r1=float(r.cmc[0]), mAP=r.mAP, mINP=r.mINP, torch="torch" in sys.modules)))
"""


def bench_p2(args: argparse.Namespace) -> None:
    nq, ng, nid = (max(10, round(v * args.scale)) for v in MSMT)
    code = textwrap.dedent(P2_CHILD).format(
        root=str(Path(__file__).resolve().parents[1]), nq=nq, ng=ng, nid=nid, dim=args.dim,
        chunk=args.chunk,
    )  # fmt: skip
    res = run_measured(code)
    flops = 2.0 * nq * ng * args.dim
    print(f"\nP2  {nq} queries x {ng} gallery, D={args.dim}, from features (float32 cosine), "
          f"query chunk {args.chunk}\n")  # fmt: skip
    print("| quantity | value |")
    print("|---|---|")
    print(f"| evaluate_from_features wall time | {res['t_eval']:.1f} s |")
    print(f"| floor: the streamed distance GEMM alone | {res['t_gemm']:.1f} s "
          f"({flops / res['t_gemm'] / 1e9:.0f} GFLOP/s, numpy) |")  # fmt: skip
    print(f"| ratio to the floor | {res['t_eval'] / res['t_gemm']:.2f}x |")
    print(f"| peak RSS of the process (features included) | {res['peak_rss_mb']:.0f} MB |")
    print(f"| of which features | {res['feats_mb']:.0f} MB |")
    print(f"| peak RSS before evaluating (data generated) | {res['rss_before_eval_mb']:.0f} MB |")
    print(f"| a dense Q x G float32 matrix would be | {nq * ng * 4 / 2**20:.0f} MB |")
    print(f"| R1 / mAP / mINP | {res['r1']:.3f} / {res['mAP']:.3f} / {res['mINP']:.3f} |")
    print(f"| torch imported | {res['torch']} |")


def bench_gemm(args: argparse.Namespace) -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import torch

    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nimporting torch: peak RSS {before:.0f} MB -> {after:.0f} MB")
    rng = np.random.default_rng(0)
    g = rng.standard_normal((round(82161 * args.scale), args.dim), dtype=np.float32)
    q = rng.standard_normal((512, args.dim), dtype=np.float32)
    flops = 2.0 * q.shape[0] * g.shape[0] * args.dim
    print(f"\nGEMM (512 x {args.dim}) @ ({args.dim} x {g.shape[0]}), float32, best of "
          f"{args.repeats}\n")  # fmt: skip
    print("| library | seconds | GFLOP/s |")
    print("|---|---|---|")
    tg = torch.from_numpy(g)
    tq = torch.from_numpy(q)
    for name, fn in (("numpy (OpenBLAS)", lambda: q @ g.T), ("torch (MKL)", lambda: tq @ tg.T)):
        fn()
        t = min(_time(fn, 1)[0] for _ in range(args.repeats))
        print(f"| {name} | {t:.3f} | {flops / t / 1e9:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-loop", action="store_true", help="skip the slow per-query loop")
    parser.add_argument("--ref-dir", default=None, help="scratch folder for fast-reid")
    parser.add_argument("--msmt", action="store_true", help="P2: MSMT17 scale from features")
    parser.add_argument("--gemm", action="store_true", help="numpy vs torch GEMM")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension")
    parser.add_argument("--chunk", type=int, default=512, help="queries per GEMM block (P2)")
    args = parser.parse_args()
    if args.gemm:
        bench_gemm(args)
    elif args.msmt:
        bench_p2(args)
    else:
        bench_p1(args)


if __name__ == "__main__":
    main()
