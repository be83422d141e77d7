"""P3 / P4: k-reciprocal re-ranking against the standard numpy implementation, and at MSMT17 scale.

    python benchmarks/bench_rerank.py --scale 0.26          # P3 at ~5k images (shared machine)
    python benchmarks/bench_rerank.py                       # P3 at Market size: 19,281 images
    python benchmarks/bench_rerank.py --msmt --scale 0.1    # P4, a tenth of MSMT17's 93,820
    python benchmarks/bench_rerank.py --msmt                # P4 at full MSMT17 scale

P3 computes the three distance matrices (q-g, q-q, g-g; Euclidean, float32) of synthetic
embeddings once, then re-ranks them (k1 20, k2 6, lambda 0.3) in two child processes - fast-reid's
``re_ranking`` (the standard numpy implementation, loaded from the PyPI sdist at bench time, see
``_reference.py``) and ``reid_pipeline.evaluation.re_ranking`` - each timed around the call and
measured for peak RSS (``getrusage``: the whole child, its loaded inputs included; the inputs'
size is printed so the algorithms' own extra memory can be read off). It then checks the two
results: max abs difference and the ranking metrics of both.

P4 runs the memory-bounded feature variant (``evaluate_from_features(..., rerank=True)``, which
streams ``iter_re_ranked`` blocks into the ranking) on MSMT17-sized embeddings in a child, and
reports time, peak RSS, and - on a subsample small enough for the standard implementation - that
its metrics equal the exact method's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._reference import (
    fetch_fastreid,
    load_reference_rerank,
    market_like_features,
    run_measured,
    scratch_dir,
)

from reid_pipeline.evaluation import (
    evaluate_from_features,
    evaluate_rank,
    pairwise_distance,
)

ROOT = Path(__file__).resolve().parents[1]
MARKET = (3368, 15913, 751)
MSMT = (11659, 82161, 3060)

P3_CHILD = """
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
d = {{k: np.load({tmp!r} + "/" + k + ".npy") for k in ("q_g", "q_q", "g_g")}}
if {which!r} == "reference":
    from benchmarks._reference import load_reference_rerank
    from pathlib import Path
    fn = load_reference_rerank(Path({ref!r}))
else:
    from reid_pipeline.evaluation import re_ranking as fn
t = time.perf_counter()
out = fn(d["q_g"], d["q_q"], d["g_g"], 20, 6, 0.3)
elapsed = time.perf_counter() - t
np.save({tmp!r} + "/out_{which}.npy", np.asarray(out, dtype=np.float32))
print(json.dumps(dict(seconds=elapsed)))
"""

P4_CHILD = """
import json, sys, time, resource
sys.path.insert(0, {root!r})
from benchmarks._reference import market_like_features
from reid_pipeline.evaluation import evaluate_from_features
d = market_like_features({nq}, {ng}, num_ids={nid}, dim={dim}, noise={noise}, seed=0)
ids = (d["q_pids"], d["g_pids"], d["q_camids"], d["g_camids"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
r = evaluate_from_features(d["q_feats"], d["g_feats"], *ids, metric="euclidean", rerank=True)
t_rr = time.perf_counter() - t
t = time.perf_counter()
p = evaluate_from_features(d["q_feats"], d["g_feats"], *ids, metric="euclidean")
t_plain = time.perf_counter() - t
feats_mb = (d["q_feats"].nbytes + d["g_feats"].nbytes) / 2**20
print(json.dumps(dict(t_rerank=t_rr, t_plain=t_plain, rss_before_mb=before, feats_mb=feats_mb,
                      r1=float(r.cmc[0]), mAP=r.mAP, plain_r1=float(p.cmc[0]), plain_mAP=p.mAP)))
"""


def _sizes(base: tuple[int, int, int], scale: float) -> tuple[int, int, int]:
    return tuple(max(10, round(v * scale)) for v in base)  # type: ignore[return-value]


def _ids(data: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    return data["q_pids"], data["g_pids"], data["q_camids"], data["g_camids"]


def bench_p3(args: argparse.Namespace) -> None:
    nq, ng, nid = _sizes(MARKET, args.scale)
    ref_dir = scratch_dir(args.ref_dir)
    fetch_fastreid(ref_dir)
    data = market_like_features(nq, ng, num_ids=nid, dim=args.dim, noise=args.noise, seed=0)
    q, g = data["q_feats"], data["g_feats"]
    with tempfile.TemporaryDirectory() as tmp:
        inputs_mb = 0.0
        for name, (a, b) in {"q_g": (q, g), "q_q": (q, q), "g_g": (g, g)}.items():
            m = pairwise_distance(a, b, metric="euclidean")
            inputs_mb += m.nbytes / 2**20
            np.save(f"{tmp}/{name}.npy", m)
            del m
        runs = {}
        for which in ("ours",) if args.no_reference else ("ours", "reference"):
            code = textwrap.dedent(P3_CHILD).format(
                root=str(ROOT), tmp=tmp, which=which, ref=str(ref_dir)
            )
            runs[which] = run_measured(code)
        out = {w: np.load(f"{tmp}/out_{w}.npy") for w in runs}
    metrics = {w: evaluate_rank(out[w], *_ids(data)) for w in out}
    plain = evaluate_rank(pairwise_distance(q, g, metric="euclidean"), *_ids(data))
    ours = runs["ours"]
    if args.no_reference:
        print(f"\nP3 (ours only)  {nq} + {ng} = {nq + ng} images: {ours['seconds']:.2f} s, "
              f"peak RSS {ours['peak_rss_mb']:.0f} MB (inputs {inputs_mb:.0f} MB); R1 "
              f"{metrics['ours'].cmc[0]:.4f} mAP {metrics['ours'].mAP:.4f} (plain mAP "
              f"{plain.mAP:.4f})")  # fmt: skip
        return
    ref = runs["reference"]
    diff = float(np.abs(out["ours"] - out["reference"]).max())
    print(f"\nP3  {nq} queries + {ng} gallery = {nq + ng} images, k1 20, k2 6, lambda 0.3 "
          f"(inputs: {inputs_mb:.0f} MB of float32 distances)\n")  # fmt: skip
    print("| implementation | seconds | peak RSS (MB) | extra over inputs (MB) | R1 | mAP |")
    print("|---|---|---|---|---|---|")
    table = (
        ("re_ranking (ours)", ours, metrics["ours"]),
        ("fast-reid re_ranking (standard numpy)", ref, metrics["reference"]),
    )
    for name, run, m in table:
        print(f"| {name} | {run['seconds']:.2f} | {run['peak_rss_mb']:.0f} | "
              f"{run['peak_rss_mb'] - inputs_mb:.0f} | {m.cmc[0]:.4f} | {m.mAP:.4f} |")  # fmt: skip
    print(f"| (no re-ranking) | - | - | - | {plain.cmc[0]:.4f} | {plain.mAP:.4f} |")
    print(f"\nspeed-up {ref['seconds'] / ours['seconds']:.1f}x, peak memory ratio "
          f"{ours['peak_rss_mb'] / ref['peak_rss_mb']:.2f} (ours / reference), max abs diff of "
          f"the re-ranked distances {diff:.1e}, |mAP diff| "
          f"{abs(metrics['ours'].mAP - metrics['reference'].mAP):.1e}")  # fmt: skip


def bench_p4(args: argparse.Namespace) -> None:
    nq, ng, nid = _sizes(MSMT, args.scale)
    code = textwrap.dedent(P4_CHILD).format(
        root=str(ROOT), nq=nq, ng=ng, nid=nid, dim=args.dim, noise=args.noise
    )
    res = run_measured(code)
    print(f"\nP4  {nq} queries + {ng} gallery = {nq + ng} images, D={args.dim}, memory-bounded "
          "re-ranking streamed into the ranking\n")  # fmt: skip
    print("| quantity | value |")
    print("|---|---|")
    print(f"| evaluate_from_features(rerank=True) | {res['t_rerank']:.1f} s |")
    print(f"| evaluate_from_features (no re-ranking) | {res['t_plain']:.1f} s |")
    print(f"| peak RSS (whole process, features included) | {res['peak_rss_mb']:.0f} MB |")
    print(f"| of which features | {res['feats_mb']:.0f} MB |")
    n = nq + ng
    print(f"| the standard implementation's dense N x N float32 matrices (>= 4 of them) | "
          f"{4 * n * n * 4 / 2**30:.1f} GB |")  # fmt: skip
    print(f"| R1 / mAP re-ranked | {res['r1']:.3f} / {res['mAP']:.3f} |")
    print(f"| R1 / mAP plain | {res['plain_r1']:.3f} / {res['plain_mAP']:.3f} |")
    if args.check_exact:
        _check_exact(args)


def _check_exact(args: argparse.Namespace) -> None:
    """On a subsample both fit: the streamed feature variant's metrics == the standard method's."""
    nq, ng, nid = _sizes(MSMT, args.check_exact / sum(MSMT[:2]))
    data = market_like_features(nq, ng, num_ids=nid, dim=args.dim, noise=args.noise, seed=1)
    q, g = data["q_feats"], data["g_feats"]
    reference = load_reference_rerank(scratch_dir(args.ref_dir))
    d = [pairwise_distance(a, b, metric="euclidean") for a, b in ((q, g), (q, q), (g, g))]
    exact = evaluate_rank(reference(*d, 20, 6, 0.3), *_ids(data))
    streamed = evaluate_from_features(q, g, *_ids(data), metric="euclidean", rerank=True)
    print(f"\nsubsample of {nq + ng} images: standard re_ranking R1 {exact.cmc[0]:.4f} mAP "
          f"{exact.mAP:.6f}; memory-bounded R1 {streamed.cmc[0]:.4f} mAP {streamed.mAP:.6f}; "
          f"max |AP diff| {np.abs(exact.all_AP - streamed.all_AP).max():.1e}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument(
        "--noise", type=float, default=1.2,
        help="within-identity noise of the synthetic embeddings (1.2: mAP ~0.5 before re-ranking)",
    )  # fmt: skip
    parser.add_argument("--msmt", action="store_true", help="P4: memory-bounded, MSMT17 scale")
    parser.add_argument(
        "--check-exact", type=int, default=3000, metavar="N",
        help="P4: compare with the standard method on N images (0: skip)",
    )  # fmt: skip
    parser.add_argument("--ref-dir", default=None, help="scratch folder for fast-reid")
    parser.add_argument(
        "--no-reference", action="store_true",
        help="P3: time only ours (the reference needs ~100 s and 8.6 GB at Market size)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.msmt:
        bench_p4(args)
    else:
        bench_p3(args)


if __name__ == "__main__":
    main()
