"""P9: gallery search, a faiss IVF or HNSW index (``reid_pipeline.inference.index.make_index``)
against exact brute force (``IndexFlatIP``: one BLAS pass over the whole gallery per query batch).

Synthetic gallery: ``--gallery`` (default 1,000,000) L2-normalised 256-d vectors clustered like
re-identification embeddings: ``gallery / 20`` identities, each a random centre, each vector its
identity's centre plus Gaussian noise (so a query's true neighbours are a few vectors among a
million, not uniform noise where every neighbour is a near tie), drawn in ``--intrinsic`` (64)
dimensions and mapped isometrically into 256 as in the ranking benchmarks (trained embeddings
have a low intrinsic dimension; isotropic 256-d clusters would defeat every partitioning index).
Queries: new noisy samples of random identities. Both indexes answer the same query batch;
recall@10 is the share of the exact top 10 that the approximate top 10 finds. Rounds alternate
the two; the figure is the median ratio.

    .venv/bin/python benchmarks/bench_search.py [--gallery 1000000] [--queries 1000]
        [--kind ivf] [--nlist 1024] [--nprobe 4,8,16,32] [--rounds 3]
    .venv/bin/python benchmarks/bench_search.py --kind hnsw [--hnsw-m 32]
        [--ef-construction 200] [--ef-search 16,32,64,128]

Target: queries/s ratio >= 20x at recall@10 >= 0.95. ``--gallery 100000`` for a quick run.
Memory: the vectors (N x 256 x 4 bytes) are held three times at the peak (the array, the flat
index, the IVF lists or HNSW storage): about 3.2 GB at 1M, plus HNSW's links (about 2 M int32
per vector at level 0).
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
    parser.add_argument("--kind", choices=("ivf", "hnsw"), default="ivf")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", default="4,8,16,32", help="ivf: nprobe values to scan")
    parser.add_argument("--hnsw-m", type=int, default=32, help="hnsw: links per node")
    parser.add_argument("--ef-construction", type=int, default=200, help="hnsw: build breadth")
    parser.add_argument("--ef-search", default="16,32,64,128", help="hnsw: efSearch values")
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
    if args.kind == "ivf":
        approx, params = make_index(gallery, "ivf", nlist=args.nlist, nprobe=8)
        approx_bytes = approx.ntotal * (DIM * 4 + 8) + args.nlist * DIM * 4  # codes, ids, centroids
        built = f"ivf (nlist {params['nlist']}, k-means on {min(args.gallery, 64 * args.nlist):,})"
        settings = [int(v) for v in args.nprobe.split(",")]
    else:
        approx, params = make_index(
            gallery, "hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction
        )
        approx_bytes = faiss.serialize_index(approx).nbytes  # vectors + links, as on disk
        built = f"hnsw (M {args.hnsw_m}, efConstruction {args.ef_construction})"
        settings = [int(v) for v in args.ef_search.split(",")]
    t_approx = time.perf_counter() - t0
    del gallery
    flat_bytes = flat.ntotal * DIM * 4

    _, truth = flat.search(q[:16], 10)  # warm-up
    _, truth = flat.search(q, 10)
    rows = []
    for setting in settings:
        if args.kind == "ivf":
            faiss.extract_index_ivf(approx).nprobe = setting
        else:
            approx.hnsw.efSearch = setting
        approx.search(q[:16], 10)  # warm-up
        r_ivf, r_flat, recall = [], [], []
        for r in range(args.rounds):
            order = (approx, flat) if r % 2 == 0 else (flat, approx)
            for index in order:
                qps, found = timed_search(index, q, 10)
                (r_ivf if index is approx else r_flat).append(qps)
                if index is approx:
                    recall.append(
                        np.mean(
                            [len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]
                        )
                    )
        ratios = [a / b for a, b in zip(r_ivf, r_flat, strict=True)]
        rows.append(
            (
                setting,
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
        f"data {t_data:.1f} s; build flat {t_flat:.1f} s, {built} {t_approx:.1f} s; memory: "
        f"flat {flat_bytes / 2**20:,.0f} MiB, {args.kind} {approx_bytes / 2**20:,.0f} MiB"
    )
    knob = "nprobe" if args.kind == "ivf" else "efSearch"
    print(
        f"{knob:>8} {args.kind + ' q/s':>10} {'exact q/s':>10} {'ratio':>8}  {'min-max':>17} "
        f"{'recall@10':>9}"
    )
    for setting, a, b, ratio, low, high, recall in rows:
        print(
            f"{setting:8d} {a:10.0f} {b:10.1f} {ratio:7.1f}x  {low:7.1f}x-{high:6.1f}x"
            f" {recall:9.4f}"
        )
    print("target: ratio >= 20x at recall@10 >= 0.95")


if __name__ == "__main__":
    main()
