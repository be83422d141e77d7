"""Pass 1 of re-ranking: the initial ranking's top-k of every image, without an N x N array.

The reference builds ``M = float32(d**2)`` of the joint (query + gallery) matrix, divides every
column by its maximum (``original_dist = (M / M.max(axis=0)).T``) and argsorts every row. Only the
first ``k = max(k1 + 1, k2)`` entries of each row are ever read, so here each block of columns of
``M`` is scanned once, in the layout its source already has:

- ``MatrixSource`` reads the three given matrices (``q_q``, ``q_g``, ``g_g``) column block by
  column block as views - no joint matrix, no squared copy;
- ``FeatureSource`` computes the same columns from features with one GEMM per block.

The top-k is selected on the distances themselves: ``f(|d|) = float32(float32(d**2) / colmax)`` is
monotone, so the k smallest entries of ``original_dist`` lie at or below the k-th smallest ``|d|``
- up to float32 rounding, which can merge values less than 2**-20 apart (relative) or below
2**-124 * colmax: the threshold carries that margin. The threshold itself is the k-th smallest of
~4k interleaved group minima (an upper bound of the k-th smallest entry, found with one reduction
pass); the few entries under it are squared, divided and sorted by (quotient, row) - the
reference's values, in stable-argsort order.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from reid_pipeline.evaluation.distance import DistanceBlocks, common_backend
from reid_pipeline.evaluation.kernels import stable_row_order

_MARGIN = 1 + 2**-20
_TINY = 2.0**-124


class MatrixSource:
    """The joint matrix ``[[q_q, q_g], [q_g.T, g_g]]`` given as its three blocks."""

    owns_pieces = False  # column pieces are views of the caller's arrays

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray) -> None:
        self.qg, self.qq, self.gg = q_g, q_q, g_g
        self.nq, self.ng = q_g.shape
        self.n = self.nq + self.ng
        # the reference squares the concatenation, in the inputs' common dtype
        self.dtype = np.float64 if np.result_type(q_g, q_q, g_g) == np.float64 else np.float32

    def square(self, d: np.ndarray) -> np.ndarray:
        """float32(d**2), the square taken in the inputs' common dtype (as the reference)."""
        return np.square(np.asarray(d, dtype=self.dtype)).astype(np.float32, copy=False)

    def column_pieces(self, lo: int, hi: int) -> list[tuple[int, np.ndarray]]:
        """Columns lo..hi (all on one side of the query/gallery boundary) of the joint distance
        matrix as (first row, (rows, hi-lo) array) pieces."""
        nq = self.nq
        if hi <= nq:  # query columns: [q_q[:, i]; q_g[i, :]]
            return [(0, self.qq[:, lo:hi]), (nq, np.ascontiguousarray(self.qg[lo:hi].T))]
        return [(0, self.qg[:, lo - nq : hi - nq]), (nq, self.gg[:, lo - nq : hi - nq])]

    def pairs(self, col: np.ndarray, row: np.ndarray) -> np.ndarray:
        """``M[row, col]`` elementwise, float32."""
        nq = self.nq
        out = np.empty(len(col), dtype=self.dtype)
        cq, rq = col < nq, row < nq
        for cmask, rmask, get in (
            (cq, rq, lambda r, c: self.qq[r, c]),
            (~cq, rq, lambda r, c: self.qg[r, c - nq]),
            (cq, ~rq, lambda r, c: self.qg[c, r - nq]),
            (~cq, ~rq, lambda r, c: self.gg[r - nq, c - nq]),
        ):
            m = cmask & rmask
            out[m] = get(row[m], col[m])
        return self.square(out)

    def query_gallery(self, lo: int, hi: int) -> np.ndarray:
        """``M[Q:, lo:hi].T`` for query columns: (hi-lo, G) float32."""
        return self.square(self.qg[lo:hi])


class FeatureSource:
    """The same matrix computed from features: ``d = pairwise_distance(., ., metric)`` on the
    joint (q; g) set, without concatenating (copying) the features."""

    owns_pieces = True  # column pieces are fresh GEMM outputs

    def __init__(self, q: Any, g: Any, metric: str) -> None:
        q, g = common_backend(q, g)
        self.nq, self.ng = q.shape[0], g.shape[0]
        self.n = self.nq + self.ng
        self.dtype = np.float64 if str(q.dtype).endswith("float64") else np.float32
        self.parts = {
            (a, b): DistanceBlocks(x, y, metric)
            for a, x in (("q", q), ("g", g))
            for b, y in (("q", q), ("g", g))
        }

    def square(self, d: np.ndarray) -> np.ndarray:
        return np.square(d).astype(np.float32, copy=False)

    def _side(self, lo: int, hi: int) -> tuple[str, int, int]:
        return ("q", lo, hi) if hi <= self.nq else ("g", lo - self.nq, hi - self.nq)

    def column_pieces(self, lo: int, hi: int) -> list[tuple[int, np.ndarray]]:
        """Every image against images lo..hi as the GEMM's second operand (column semantics)."""
        side, a, b = self._side(lo, hi)
        return [
            (0, self.parts["q", side].block(0, self.nq, a, b)),
            (self.nq, self.parts["g", side].block(0, self.ng, a, b)),
        ]

    def pairs(self, col: np.ndarray, row: np.ndarray) -> np.ndarray:
        """``M[row, col]`` = squared distance of joint images ``col`` and ``row``."""
        out = np.empty(len(col), dtype=np.float32)
        for a, ca in (("q", col < self.nq), ("g", col >= self.nq)):
            for b, rb in (("q", row < self.nq), ("g", row >= self.nq)):
                m = np.flatnonzero(ca & rb)
                i = col[m] - (0 if a == "q" else self.nq)
                j = row[m] - (0 if b == "q" else self.nq)
                for s in range(0, len(m), 1 << 16):
                    sl = slice(s, s + (1 << 16))
                    out[m[sl]] = self.square(self.parts[a, b].pairs(i[sl], j[sl]))
        return out

    def query_gallery(self, lo: int, hi: int) -> np.ndarray:
        return self.square(self.parts["q", "g"].block(lo, hi))


def _column_kth(pieces: list[np.ndarray], j: int) -> np.ndarray:
    """The j-th smallest entry of every column of the stacked pieces (small inputs)."""
    stacked = np.concatenate([np.asarray(p).T for p in pieces], axis=1)  # (B, rows) contiguous
    return np.partition(stacked, j - 1, axis=1)[:, j - 1]


def _group_minima(p: np.ndarray, groups: int) -> np.ndarray:
    """Per column, the minimum of each of ``groups`` interleaved row groups (rows i, i + groups,
    i + 2 groups, ...), plus the leftover rows as groups of one: (about ``groups``, B)."""
    r = (len(p) // groups) * groups
    parts = [p[:r].reshape(-1, groups, p.shape[1]).min(axis=0)] if r else []
    return np.concatenate([*parts, p[r:]]) if r < len(p) else parts[0]


def _under(
    pieces: list[tuple[int, np.ndarray]], thr: np.ndarray, cols: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value) of every entry <= its column's threshold, over all pieces."""
    rows, colss, vals = [], [], []
    for offset, p in pieces:
        sub = p if cols is None else p[:, cols]
        flat = np.flatnonzero(sub <= thr[None, :])  # a 2-D nonzero is far slower
        r, c = np.divmod(flat, sub.shape[1])
        rows.append(r + offset)
        colss.append(c if cols is None else cols[c])
        vals.append(sub[r, c])
    return np.concatenate(rows), np.concatenate(colss), np.concatenate(vals)


def topk_block(source: Any, lo: int, hi: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ranks (B, k), colmax (B,)) of columns lo..hi: the stable top-k of ``original_dist``."""
    n, b = source.n, hi - lo
    pieces = source.column_pieces(lo, hi)
    groups = [max(1, -(-4 * k * len(p) // n)) for _, p in pieces]  # ~4k groups in all
    tops = np.max([p.max(axis=0) for _, p in pieces], axis=0)  # NaN propagates
    minima = [_group_minima(p, gr) for (_, p), gr in zip(pieces, groups, strict=True)]
    bottoms = np.min([m.min(axis=0) for m in minima], axis=0)
    bad = ~(np.isfinite(tops) & np.isfinite(bottoms))
    if bad.any():
        raise ValueError(
            f"distances contain NaN or infinite values (image {lo + int(np.argmax(bad))} of q+g)"
        )
    if np.any(bottoms < 0):  # squares order by |d| (cosine distances can round below 0)
        out = source.owns_pieces  # fresh GEMM output can be overwritten, the caller's cannot
        pieces = [(off, np.abs(p, out=p if out else None)) for off, p in pieces]
        tops = np.maximum(tops, -bottoms)
        minima = [_group_minima(p, gr) for (_, p), gr in zip(pieces, groups, strict=True)]
    colmax = source.square(tops)
    if not np.all(np.isfinite(colmax)) or np.any(colmax <= 0):
        i = lo + int(np.argmax(~np.isfinite(colmax) | (colmax <= 0)))
        raise ValueError(
            f"image {i} of q+g: re-ranking divides squared distances by their column maximum, "
            "which must be positive and finite in float32 (all distances 0, or beyond ~1.8e19)"
        )
    if k >= n:
        full = np.concatenate([source.square(p) for _, p in pieces]) / colmax
        return np.argsort(full, axis=0, kind="stable").T, colmax
    floor = np.sqrt(colmax.astype(np.float64) * _TINY)  # |d| whose quotient may be subnormal
    # The k-th smallest of the group minima bounds the k-th smallest entry from above (k of the
    # minima are entries at or below it) and, with ~4k interleaved groups, lets only a few dozen
    # entries per column under it - one cheap selection, no fallback.
    kth = _column_kth(minima, k)
    thr = np.maximum(kth.astype(np.float64) * _MARGIN, floor).astype(kth.dtype)
    row, col, val = _under(pieces, thr)
    quotient = source.square(val) / colmax[col]  # original_dist entries (float32)
    col, row = stable_row_order(col, row, quotient, int(n - 1).bit_length())
    counts = np.bincount(col, minlength=b)
    return row[(np.cumsum(counts) - counts)[:, None] + np.arange(k)], colmax


def neighbours(source: Any, width: int, block_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable top-``width`` of every row of ``original_dist`` (N, width) and the column maxima."""
    n = source.n
    ranks = np.empty((n, width), dtype=np.int64)
    colmax = np.empty(n, dtype=np.float32)
    # blocks never straddle the query / gallery boundary
    bounds = [*range(0, source.nq, block_cols), *range(source.nq, n, block_cols), n]
    for lo, hi in itertools.pairwise(bounds):
        ranks[lo:hi], colmax[lo:hi] = topk_block(source, lo, hi, width)
    return ranks, colmax
