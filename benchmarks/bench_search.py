"""P9: gallery search, a faiss IVF index (``reid_pipeline.inference.index.make_index``) against
exact brute force (``IndexFlatIP``: one BLAS pass over the whole gallery per query batch).

Synthetic gallery: ``--gallery`` (default 1,000,000) L2-normalised 256-d vectors clustered like
re-identification embeddings: ``gallery / 20`` identities, each a random centre, each vector its
identity's centre plus Gaussian noise (so a query's true neighbours are a few vectors among a
million, not uniform noise where every neighbour is a near tie), drawn in ``--intrinsic`` (64)
dimensions and mapped isometrically into 256 as in the ranking benchmarks (trained embeddings
have a low intrinsic dimension; isotropic 256-d clusters would defeat every partitioning index).
Queries: new noisy samples of random identities. Both indexes answer the same query batch;
recall@10 is the share of the exact top 10 that the IVF top 10 finds. Rounds alternate the two;
the figure is the median ratio.

    .venv/bin/python benchmarks/bench_search.py [--gallery 1000000] [--queries 1000]
        [--nlist 1024] [--nprobe 4,8,16,32] [--rounds 3]

Target: queries/s ratio >= 20x at recall@10 >= 0.95. ``--gallery 100000`` for a quick run.
Memory: the vectors (N x 256 x 4 bytes) are held three times at the peak (the array, the flat
index, the IVF lists): about 3.2 GB at 1M.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import faiss
import numpy as np

from reid_pipeline.inference.index import make_index

DIM = 256


def embed(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Intrinsic vectors mapped isometrically into DIM dimensions, L2-normalised."""
    y = x @ basis  # (n, DIM)
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def samples(
    centres: np.ndarray, ids: np.ndarray, noise: float, basis: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    out = np.empty((len(ids), DIM), dtype=np.float32)
    for lo in range(0, len(ids), 100_000):
        block = ids[lo : lo + 100_000]
        x = centres[block] + noise * rng.standard_normal((len(block), centres.shape[1]), np.float32)
        out[lo : lo + len(block)] = embed(x, basis)
    return out


def timed_search(index: faiss.Index, q: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    _, ids = index.search(q, k)
    return len(q) / (time.perf_counter() - start), ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gallery", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", default="4,8,16,32")
    parser.add_argument("--noise", type=float, default=0.5, help="per-dimension noise / centre")
    parser.add_argument("--intrinsic", type=int, default=64, help="intrinsic dimensions")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_ids = max(1, args.gallery // 20)
    t0 = time.perf_counter()
    centres = rng.standard_normal((n_ids, args.intrinsic), dtype=np.float32)
    basis = np.linalg.qr(rng.standard_normal((DIM, args.intrinsic)))[0].T.astype(np.float32)
    gallery = samples(centres, np.arange(args.gallery) % n_ids, args.noise, basis, rng)
    q = samples(centres, rng.integers(0, n_ids, args.queries), args.noise, basis, rng)
    t_data = time.perf_counter() - t0

    t0 = time.perf_counter()
    flat, _ = make_index(gallery, "flat")
    t_flat = time.perf_counter() - t0
    t0 = time.perf_counter()
    ivf, params = make_index(gallery, "ivf", nlist=args.nlist, nprobe=8)
    t_ivf = time.perf_counter() - t0
    del gallery
    ivf_bytes = ivf.ntotal * (DIM * 4 + 8) + args.nlist * DIM * 4  # codes + ids + centroids
    flat_bytes = flat.ntotal * DIM * 4

    _, truth = flat.search(q[:16], 10)  # warm-up
    _, truth = flat.search(q, 10)
    rows = []
    for nprobe in [int(v) for v in args.nprobe.split(",")]:
        faiss.extract_index_ivf(ivf).nprobe = nprobe
        ivf.search(q[:16], 10)  # warm-up
        r_ivf, r_flat, recall = [], [], []
        for r in range(args.rounds):
            order = (ivf, flat) if r % 2 == 0 else (flat, ivf)
            for index in order:
                qps, found = timed_search(index, q, 10)
                (r_ivf if index is ivf else r_flat).append(qps)
                if index is ivf:
                    recall.append(
                        np.mean(
                            [len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]
                        )
                    )
        ratios = [a / b for a, b in zip(r_ivf, r_flat, strict=True)]
        rows.append(
            (
                nprobe,
                statistics.median(r_ivf),
                statistics.median(r_flat),
                statistics.median(ratios),
                min(ratios),
                max(ratios),
                float(np.mean(recall)),
            )
        )
    cpu = platform.processor() or platform.machine()
    print(
        f"\nP9 search: {args.gallery:,} x {DIM} gallery ({n_ids:,} identities, {args.intrinsic} "
        f"intrinsic dims, noise {args.noise}), {args.queries} queries, top 10; {cpu}, "
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads"
    )
    print(
        f"data {t_data:.1f} s; build flat {t_flat:.1f} s, ivf (nlist {params['nlist']}, "
        f"k-means on {min(args.gallery, 64 * args.nlist):,}) {t_ivf:.1f} s; memory: flat "
        f"{flat_bytes / 2**20:,.0f} MiB, ivf {ivf_bytes / 2**20:,.0f} MiB"
    )
    print(
        f"{'nprobe':>6} {'ivf q/s':>10} {'exact q/s':>10} {'ratio':>8}  {'min-max':>17} "
        f"{'recall@10':>9}"
    )
    for nprobe, a, b, ratio, low, high, recall in rows:
        print(
            f"{nprobe:6d} {a:10.0f} {b:10.1f} {ratio:7.1f}x  {low:7.1f}x-{high:6.1f}x {recall:9.4f}"
        )
    print("target: ratio >= 20x at recall@10 >= 0.95")


if __name__ == "__main__":
    main()
