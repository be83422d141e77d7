"""The vectorised ranking kernel behind ``evaluate_rank`` (and the stable top-k re-ranking uses).

Only the ranks of the relevant items enter CMC / AP / INP, and a relevant item's rank among the
kept gallery items is ``1 + #{kept j : (d_j, j) < (d_p, p)}`` - the stable argsort order. Per
chunk of queries, two ways to get them (chosen by how many entries can matter):

- sparse (the usual case, a model that works): every entry at or below the row's farthest
  relevant distance ``t`` is kept by one vectorised comparison (typically a few dozen per row),
  the same-pid-same-camera entries are dropped, and the kept entries are sorted once by a packed
  64-bit key ``(row, distance bits, gallery index)``: unique keys, so numpy's fast unstable sort
  yields exactly the stable order.
- dense (``t`` deep in the list, e.g. an untrained model): ``np.argsort`` of the rows (numpy's
  SIMD sort), the position of each same-pid item through the inverse permutation, and a sparse
  check for ties around those items (rows with one are re-sorted stably); excluded items ranked
  before a relevant one are subtracted from its position.

Both feed the same tail: (row, rank) of every relevant item -> AP, INP, the first-match rank, and
for the unique-identity CMC the number of distinct identities ranked above the first match.
"""

from __future__ import annotations

import numpy as np

#: above this fraction of entries under the threshold, sorting whole rows is cheaper
DENSE_FRACTION = 0.1


class GalleryIndex:
    """Gallery ids grouped by pid once, so each query's relevant items are found by bisection."""

    def __init__(self, pids: np.ndarray, camids: np.ndarray) -> None:
        self.pids, self.camids, self.size = pids, camids, len(pids)
        self.order = np.argsort(pids, kind="stable")
        self.sorted_pids = pids[self.order]
        uniq, self.codes = np.unique(pids, return_inverse=True)
        self.num_ids = len(uniq)
        self.col_bits = max(1, int(self.size - 1).bit_length())


def _sortable_bits(vals: np.ndarray) -> np.ndarray:
    """float32 -> uint64 holding 32 bits whose unsigned order is the float order (-0.0 == 0.0)."""
    bits = (vals + np.float32(0.0)).view(np.uint32).astype(np.uint64)
    flip = np.where(bits >= np.uint64(0x80000000), np.uint64(0xFFFFFFFF), np.uint64(0x80000000))
    return bits ^ flip


def stable_row_order(
    row: np.ndarray, col: np.ndarray, vals: np.ndarray, col_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reorder entries by (row, value, col); return (row, col). ``col < 2**col_bits``."""
    row_bits = max(1, int(row.max()).bit_length()) if len(row) else 1
    if vals.dtype == np.float32 and row_bits + 32 + col_bits <= 64:
        key = _sortable_bits(vals)
        key <<= np.uint64(col_bits)
        key |= row.astype(np.uint64) << np.uint64(32 + col_bits)
        key |= col.astype(np.uint64)
        key.sort()  # unique keys: an unstable sort gives the stable order
        col_out = (key & np.uint64((1 << col_bits) - 1)).astype(np.int64)
        key >>= np.uint64(32 + col_bits)
        return key.astype(np.int64), col_out
    order = np.lexsort((col, vals, row))
    return row[order], col[order]


def _same_pid_pairs(
    q_pids: np.ndarray, q_camids: np.ndarray, gal: GalleryIndex, remove_same_camera: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row, gallery index, excluded?) of every same-pid pair; rows ascending."""
    lo = np.searchsorted(gal.sorted_pids, q_pids, side="left")
    cnt = np.searchsorted(gal.sorted_pids, q_pids, side="right") - lo
    rep = np.repeat(np.arange(len(q_pids)), cnt)
    within = np.arange(len(rep)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    gidx = gal.order[np.repeat(lo, cnt) + within]  # ascending gallery index per row
    if remove_same_camera:
        excluded = gal.camids[gidx] == q_camids[rep]
    else:
        excluded = np.zeros(len(rep), dtype=bool)
    return rep, gidx, excluded


def rank_block(
    dist: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    gal: GalleryIndex,
    *,
    remove_same_camera: bool,
    unique_id_cmc: bool,
    ap_max_rank: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-query (num relevant, AP, INP, first-match rank) of one (B, G) distance block.
    ``ap_max_rank``: AP sums the precision of the relevant items ranked up to it only (still
    divided by all relevant items), as the official PMM evaluator's mAP@50."""
    b = dist.shape[0]
    rep, gidx, excluded = _same_pid_pairs(q_pids, q_camids, gal, remove_same_camera)
    pos_row, pos_col = rep[~excluded], gidx[~excluded]
    npos = np.bincount(pos_row, minlength=b)
    nonzero = npos > 0
    if not nonzero.any():
        return npos, np.zeros(b), np.zeros(b), np.zeros(b, dtype=np.int64)
    # the farthest relevant distance bounds everything that influences the metrics
    thr = np.full(b, -np.inf, dtype=dist.dtype)
    thr[nonzero] = np.maximum.reduceat(dist[pos_row, pos_col], (np.cumsum(npos) - npos)[nonzero])
    keep = dist <= thr[:, None]  # (B, G)
    pairs = (rep, gidx, excluded)
    if np.count_nonzero(keep) > DENSE_FRACTION * keep.size:
        del keep
        r_row, r_rank, before = _dense(dist, q_pids=q_pids, gal=gal, pairs=pairs)
    else:
        r_row, r_rank, before = _sparse(dist, keep, q_pids=q_pids, gal=gal, pairs=pairs)
    return _metrics(
        npos,
        (r_row, r_rank),
        negatives_before=before,
        gal=gal,
        unique_id_cmc=unique_id_cmc,
        ap_max_rank=ap_max_rank,
    )


def _sparse(
    dist: np.ndarray,
    keep: np.ndarray,
    *,
    q_pids: np.ndarray,
    gal: GalleryIndex,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, object]:
    """Ranks from the entries under the threshold (``keep``), sorted by packed keys."""
    rep, gidx, excluded = pairs
    g = dist.shape[1]
    keep[rep[excluded], gidx[excluded]] = False
    flat = np.flatnonzero(keep)
    row = flat // g
    row, col = stable_row_order(row, flat - row * g, dist.reshape(-1)[flat], gal.col_bits)
    counts = np.bincount(row, minlength=dist.shape[0])
    rank = np.arange(1, len(row) + 1) - (np.cumsum(counts) - counts)[row]  # among kept items
    relevant = gal.pids[col] == q_pids[row]

    def negatives_before(first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sel = rank < first[row]
        return row[sel], col[sel]

    return row[relevant], rank[relevant], negatives_before


def _dense(
    dist: np.ndarray,
    *,
    q_pids: np.ndarray,
    gal: GalleryIndex,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, object]:
    """Ranks from whole-row argsorts, made stable where a relevant item is tied."""
    rep, gidx, excluded = pairs
    b, g = dist.shape
    order = np.argsort(dist, axis=1)  # (B, G), unstable: ties are checked below
    rows = np.arange(b)[:, None]
    inv = np.empty_like(order)
    inv[rows, order] = np.arange(g)
    pos = inv[rep, gidx]
    val = dist[rep, gidx]
    left = dist[rep, order[rep, np.maximum(pos - 1, 0)]]
    right = dist[rep, order[rep, np.minimum(pos + 1, g - 1)]]
    tied = ((pos > 0) & (left == val)) | ((pos < g - 1) & (right == val))
    if tied.any():  # re-sort those rows stably (ties by ascending gallery index)
        fix = np.unique(rep[tied])
        order[fix] = np.argsort(dist[fix], axis=1, kind="stable")
        inv[fix[:, None], order[fix]] = np.arange(g)
        pos = inv[rep, gidx]
    # rank among kept items = position + 1 - excluded items sorted before it
    ex_key = np.sort(rep[excluded] * g + pos[excluded])
    pr, pp = rep[~excluded], pos[~excluded]
    dropped = np.searchsorted(ex_key, pr * g + pp) - np.searchsorted(ex_key, pr * g)
    rank = pp + 1 - dropped
    order_p = np.lexsort((rank, pr))
    r_row, r_rank = pr[order_p], rank[order_p]

    def negatives_before(first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # sorted positions above the first relevant item: its position = rank - 1 + dropped
        first_pos = np.zeros(b, dtype=np.int64)
        starts = np.flatnonzero(np.concatenate(([True], np.diff(r_row) != 0)))
        first_pos[r_row[starts]] = pp[order_p][starts]
        owner = np.repeat(np.arange(b), first_pos)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(first_pos) - first_pos, first_pos)
        col = order[owner, offset]
        other = gal.pids[col] != q_pids[owner]  # drops the excluded same-pid items
        return owner[other], col[other]

    return r_row, r_rank, negatives_before


def _metrics(
    npos: np.ndarray,
    hits: tuple[np.ndarray, np.ndarray],
    *,
    negatives_before: object,
    gal: GalleryIndex,
    unique_id_cmc: bool,
    ap_max_rank: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AP, INP and first-match rank from the (row, rank) of every relevant item, sorted."""
    b = len(npos)
    r_row, r_rank = hits
    nonzero = npos > 0
    change = np.diff(r_row) != 0
    first_idx = np.flatnonzero(np.concatenate(([True], change)))  # first hit of each row
    last_idx = np.flatnonzero(np.concatenate((change, [True])))  # last hit of each row
    k = np.arange(1, len(r_row) + 1) - np.repeat(first_idx, np.diff([*first_idx, len(r_row)]))
    precision = k / r_rank
    if ap_max_rank is not None:  # only the relevant items within the first ap_max_rank ranks
        precision = np.where(r_rank <= ap_max_rank, precision, 0.0)
    ap = np.bincount(r_row, weights=precision, minlength=b)
    ap[nonzero] /= npos[nonzero]
    inp = np.zeros(b)
    inp[r_row[last_idx]] = npos[r_row[last_idx]] / r_rank[last_idx]
    first = np.zeros(b, dtype=np.int64)
    first[r_row[first_idx]] = r_rank[first_idx]
    if unique_id_cmc:  # 1 + distinct identities ranked above the first match
        row, col = negatives_before(first)  # type: ignore[operator]
        ids = np.unique(row * gal.num_ids + gal.codes[col])
        first[nonzero] = 1 + np.bincount(ids // gal.num_ids, minlength=b)[nonzero]
    return npos, ap, inp, first
