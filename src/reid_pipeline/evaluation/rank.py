"""Ranking metrics: CMC, mAP and mINP, exactly as the field's per-query argsort loop defines them.

Definition (torchreid / fast-reid ``eval_market1501``; mINP from Ye et al., "Deep Learning for
Person Re-identification: A Survey and Outlook", TPAMI 2021): for each query, sort the gallery by
distance; drop gallery items with the query's pid *and* camid; relevant = same pid. A query with
no relevant item left is skipped (counted in ``num_skipped`` with its reason, never silently).
``CMC_k`` = 1 if a relevant item is among the first k; ``AP`` = mean over relevant items of
(relevant items up to it / its rank); ``INP`` = (number relevant) / (rank of the last relevant).
CMC, mAP and mINP are means over the valid queries.

Ties: items at equal distance are ranked as a *stable* argsort ranks them - by ascending gallery
index. (The reference loops call ``np.argsort`` with its default, unstable quicksort, so on exactly
tied distances their order - and hence their numbers - is implementation-defined; without ties
every variant gives the same numbers.)

Options used by the protocols: ``remove_same_camera`` (the same-pid-same-camera rule, on by
default), ``excluded_cameras`` (query camid -> gallery camids never ranked for it, any pid: SYSU-
MM01's "cam3 queries never match cam2") and ``unique_id_cmc`` (the VI-ReID CMC that keeps only the
best-ranked gallery image per identity, SYSU-MM01's official ``get_cmc_multi_cam``; AP / INP stay
over the full list).

How it is fast without a per-query loop or a compiled extension: ``kernels.py`` (only the
entries up to each query's farthest match are sorted, by a packed 64-bit key that reproduces the
stable argsort; rows where that is most of the list are argsorted whole). Memory O(chunk x G).

The definitions beside every protocol's rules, and the measured speed: docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reid_pipeline.evaluation.distance import (
    DEFAULT_GEMM_ROWS,
    Metric,
    as_features,
    check_metric,
    stream_distance_blocks,
    to_numpy,
)
from reid_pipeline.evaluation.kernels import GalleryIndex, rank_block
from reid_pipeline.evaluation.rerank import iter_re_ranked

#: Why a query can be left out of the means.
SKIP_REASONS: dict[str, str] = {
    "identity_not_in_gallery": "the query's pid does not occur in the gallery at all",
    "all_matches_excluded": (
        "every gallery image of the query's pid was removed by the exclusion rule (same pid and "
        "same camera, or a camera excluded for the query's camera)"
    ),
}

_ROW_CHUNK_ELEMENTS = 1 << 22  # ~4M distances per ranking chunk: a few tens of MB of temporaries


@dataclass(frozen=True, eq=False)
class RankResult:
    """Metrics of one ranking. Arrays of per-query values cover the valid queries only, in
    ascending query index (``valid_indices``)."""

    cmc: np.ndarray  #: (max_rank,) fraction of valid queries with a match within rank k
    mAP: float
    mINP: float
    all_AP: np.ndarray  #: (num_valid,) float64
    all_INP: np.ndarray  #: (num_valid,) float64
    valid_indices: np.ndarray  #: (num_valid,) query index of each entry above
    first_match_rank: np.ndarray  #: (num_valid,) 1-based rank of the first match (CMC's sense)
    num_valid: int
    num_skipped: int
    skipped: dict[str, np.ndarray] = field(default_factory=dict)  #: reason -> query indices
    unique_id_cmc: bool = False

    def rank(self, k: int) -> float:
        """``CMC_k``, the rank-k accuracy."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank k must be in 1..{len(self.cmc)} (max_rank), got {k}")
        return float(self.cmc[k - 1])

    def summary(self, ranks: Iterable[int] = (1, 5, 10, 20)) -> dict[str, float]:
        """``{"R1": .., "R5": .., ..., "mAP": .., "mINP": ..}`` (ranks beyond max_rank left out)."""
        out = {f"R{k}": self.rank(k) for k in ranks if k <= len(self.cmc)}
        out.update(mAP=self.mAP, mINP=self.mINP)
        return out

    def to_dict(self, *, curve: bool = True) -> dict[str, Any]:
        """JSON-able summary: the metrics, counts, skipped counts per reason and the CMC curve."""
        out: dict[str, Any] = dict(self.summary())
        out.update(
            num_valid=self.num_valid,
            num_skipped=self.num_skipped,
            skipped={reason: len(idx) for reason, idx in self.skipped.items()},
            unique_id_cmc=self.unique_id_cmc,
        )
        if curve:
            out["cmc"] = [float(v) for v in self.cmc]
        return out


# --------------------------------------------------------------------------- input checks


def as_distmat(distmat: Any) -> np.ndarray:
    d = to_numpy(distmat, name="distmat")
    if d.ndim != 2:
        raise ValueError(
            f"distmat must be a 2-D (num_query, num_gallery) array, got shape {d.shape}"
        )
    if d.shape[0] == 0:
        raise ValueError("distmat has no rows: the query set is empty")
    if d.shape[1] == 0:
        raise ValueError("distmat has no columns: the gallery is empty")
    if d.dtype.kind not in "iuf":
        raise ValueError(f"distmat must hold real numbers, got dtype {d.dtype}")
    if d.dtype not in (np.float64, np.float32):
        d = d.astype(np.float64 if d.dtype.kind in "iu" and d.dtype.itemsize > 2 else np.float32)
    return d


def as_ids(x: Any, *, name: str, length: int, what: str) -> np.ndarray:
    """A 1-D int64 id array of ``length`` entries, or one ValueError naming ``name``."""
    a = to_numpy(x, name=name)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if len(a) != length:
        raise ValueError(f"{name} has {len(a)} entries but {what} has {length}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name} must hold integer ids, got non-integral values")
    elif a.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer ids, got dtype {a.dtype}")
    return a.astype(np.int64)


def check_max_rank(max_rank: Any) -> int:
    if isinstance(max_rank, bool) or not isinstance(max_rank, int | np.integer) or max_rank < 1:
        raise ValueError(f"max_rank must be an integer >= 1, got {max_rank!r}")
    return int(max_rank)


def check_map_max_rank(map_max_rank: Any) -> int | None:
    """None (AP over the whole ranked list) or the rank the AP sum stops at (an int >= 1)."""
    if map_max_rank is None:
        return None
    if (
        isinstance(map_max_rank, bool)
        or not isinstance(map_max_rank, int | np.integer)
        or map_max_rank < 1
    ):
        raise ValueError(f"map_max_rank must be None or an integer >= 1, got {map_max_rank!r}")
    return int(map_max_rank)


def _check_chunk(chunk_size: Any) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return chunk_size


def _check_excluded(excluded: Mapping[int, Iterable[int]] | None) -> dict[int, np.ndarray]:
    if excluded is None:
        return {}
    if not isinstance(excluded, Mapping):
        raise ValueError(
            "excluded_cameras must map a query camid to the gallery camids it never matches, "
            f"got {type(excluded).__name__}"
        )
    out = {}
    for q_cam, g_cams in excluded.items():
        cams = np.unique(np.asarray(list(g_cams), dtype=np.int64))
        if len(cams):
            out[int(q_cam)] = cams
    return out


# --------------------------------------------------------------------------- the driver


class _Ranker:
    """Feeds distance blocks through the kernel, per exclusion group, and collects the results."""

    def __init__(
        self,
        q_pids: np.ndarray,
        g_pids: np.ndarray,
        q_camids: np.ndarray,
        g_camids: np.ndarray,
        *,
        max_rank: int,
        chunk_size: int | None,
        remove_same_camera: bool,
        excluded_cameras: dict[int, np.ndarray],
        unique_id_cmc: bool,
        map_max_rank: int | None = None,
    ) -> None:
        self.q_pids, self.q_camids = q_pids, q_camids
        self.map_max_rank = map_max_rank
        self.max_rank, self.unique_id_cmc = max_rank, unique_id_cmc
        self.remove_same_camera = remove_same_camera
        nq = len(q_pids)
        self.npos = np.full(nq, -1, dtype=np.int64)
        self.ap, self.inp = np.zeros(nq), np.zeros(nq)
        self.first = np.zeros(nq, dtype=np.int64)
        self.present = np.isin(q_pids, g_pids)
        # one group per distinct set of excluded gallery cameras; (query mask, columns, gallery)
        self.groups: list[tuple[np.ndarray | None, np.ndarray | None, GalleryIndex]] = []
        special = np.isin(q_camids, list(excluded_cameras)) if excluded_cameras else None
        if special is None or not special.any():
            self.groups.append((None, None, GalleryIndex(g_pids, g_camids)))
        else:
            self.groups.append((~special, None, GalleryIndex(g_pids, g_camids)))
            for cam, cams in excluded_cameras.items():
                cols = np.flatnonzero(~np.isin(g_camids, cams))
                self.groups.append(
                    (q_camids == cam, cols, GalleryIndex(g_pids[cols], g_camids[cols]))
                )
        widest = max(gal.size for _, _, gal in self.groups)
        self.row_chunk = chunk_size or max(1, min(2048, _ROW_CHUNK_ELEMENTS // max(widest, 1)))

    def add(self, start: int, block: np.ndarray) -> None:
        """Rank the queries ``start .. start+len(block)`` given their (B, G) distances."""
        _check_finite(block, start)
        stop = start + len(block)
        for mask, cols, gal in self.groups:
            if mask is None:
                rows = np.arange(start, stop)
                sub = block
            else:
                rows = start + np.flatnonzero(mask[start:stop])
                if len(rows) == 0:
                    continue
                sub = block[rows - start] if cols is None else block[np.ix_(rows - start, cols)]
            for s in range(0, len(rows), self.row_chunk):
                r = rows[s : s + self.row_chunk]
                part = np.ascontiguousarray(sub[s : s + self.row_chunk])
                npos, ap, inp, first = rank_block(
                    part,
                    self.q_pids[r],
                    self.q_camids[r],
                    gal,
                    remove_same_camera=self.remove_same_camera,
                    unique_id_cmc=self.unique_id_cmc,
                    ap_max_rank=self.map_max_rank,
                )
                self.npos[r], self.ap[r], self.inp[r], self.first[r] = npos, ap, inp, first

    def result(self) -> RankResult:
        valid = self.npos > 0
        n_valid = int(valid.sum())
        absent = np.flatnonzero(~self.present)
        excluded = np.flatnonzero(self.present & ~valid)
        if n_valid == 0:
            raise ValueError(_no_valid_query_message(len(valid), len(absent), len(excluded)))
        first = self.first[valid]
        hist = np.bincount(np.minimum(first, self.max_rank + 1) - 1, minlength=self.max_rank + 1)
        cmc = np.cumsum(hist[: self.max_rank]) / n_valid
        skipped = {}
        if len(absent):
            skipped["identity_not_in_gallery"] = absent
        if len(excluded):
            skipped["all_matches_excluded"] = excluded
        all_ap, all_inp = self.ap[valid], self.inp[valid]
        return RankResult(
            cmc=cmc,
            mAP=float(all_ap.mean()),
            mINP=float(all_inp.mean()),
            all_AP=all_ap,
            all_INP=all_inp,
            valid_indices=np.flatnonzero(valid),
            first_match_rank=first,
            num_valid=n_valid,
            num_skipped=len(valid) - n_valid,
            skipped=skipped,
            unique_id_cmc=self.unique_id_cmc,
        )


def _check_finite(block: np.ndarray, start: int) -> None:
    lo, hi = block.min(), block.max()  # NaN propagates through both
    if not (np.isfinite(lo) and np.isfinite(hi)):
        r, c = np.argwhere(~np.isfinite(block))[0]
        raise ValueError(
            f"distmat contains NaN or infinite values (first at query row {start + r}, gallery "
            f"column {c}); distances must be finite"
        )


def _no_valid_query_message(n: int, absent: int, excluded: int) -> str:
    return (
        f"none of the {n} queries has a correct match left in the gallery: {absent} query "
        f"identities do not occur in the gallery at all and {excluded} have gallery images only "
        "where the exclusion rule removes them (same pid and same camera). Usual causes: query and "
        "gallery pids numbered differently (e.g. relabelled training pids passed as query pids), "
        "camera ids that are the same for every image of a custom dataset, or query / gallery "
        "records taken from different splits."
    )


def _ranker(
    shape: tuple[int, int],
    ids: tuple[Any, Any, Any, Any],
    *,
    max_rank: Any,
    chunk_size: Any,
    options: Mapping[str, Any],
    rows_name: str,
    cols_name: str,
) -> _Ranker:
    """Check ``(q_pids, g_pids, q_camids, g_camids)`` against ``shape`` and build the ranker."""
    (nq, ng), (q_pids, g_pids, q_camids, g_camids) = shape, ids
    return _Ranker(
        as_ids(q_pids, name="q_pids", length=nq, what=rows_name),
        as_ids(g_pids, name="g_pids", length=ng, what=cols_name),
        as_ids(q_camids, name="q_camids", length=nq, what=rows_name),
        as_ids(g_camids, name="g_camids", length=ng, what=cols_name),
        max_rank=check_max_rank(max_rank),
        chunk_size=_check_chunk(chunk_size),
        remove_same_camera=bool(options["remove_same_camera"]),
        excluded_cameras=_check_excluded(options["excluded_cameras"]),
        unique_id_cmc=bool(options["unique_id_cmc"]),
        map_max_rank=check_map_max_rank(options.get("map_max_rank")),
    )


def evaluate_rank(  # noqa: PLR0917 - the field's positional signature (torchreid, fast-reid)
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    *,
    chunk_size: int | None = None,
    remove_same_camera: bool = True,
    excluded_cameras: Mapping[int, Iterable[int]] | None = None,
    unique_id_cmc: bool = False,
    map_max_rank: int | None = None,
) -> RankResult:
    """CMC / mAP / mINP of a (Q, G) distance matrix (numpy array or torch tensor).

    ``chunk_size``: queries ranked together (default: about 4M distances per chunk).
    ``remove_same_camera``: drop gallery items with the query's pid and camid (the standard rule).
    ``excluded_cameras``: ``{query camid: gallery camids}`` removed for those queries, any pid.
    ``unique_id_cmc``: CMC over the list with only the best-ranked image of each identity.
    ``map_max_rank``: each AP sums the precision at the relevant items ranked within the first
    ``map_max_rank`` places only, divided by all the query's relevant items (the official PMM
    evaluator's mAP with 50); None (default) is the standard full-list AP. mINP is unaffected.
    Raises ValueError naming the argument for bad shapes, lengths, NaN / inf or ``max_rank < 1``,
    and when no query has a match (with the usual causes).
    """
    d = as_distmat(distmat)
    ranker = _ranker(
        d.shape,
        (q_pids, g_pids, q_camids, g_camids),
        max_rank=max_rank,
        chunk_size=chunk_size,
        options={
            "remove_same_camera": remove_same_camera,
            "excluded_cameras": excluded_cameras,
            "unique_id_cmc": unique_id_cmc,
            "map_max_rank": map_max_rank,
        },
        rows_name="distmat (rows = queries)",
        cols_name="distmat (columns = gallery)",
    )
    step = max(ranker.row_chunk, 1)
    for start in range(0, d.shape[0], step):
        ranker.add(start, d[start : start + step])
    return ranker.result()


def evaluate_from_features(  # noqa: PLR0917 - mirrors evaluate_rank's positional ids
    q_feats: Any,
    g_feats: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    *,
    metric: Metric = "cosine",
    max_rank: int = 50,
    chunk_size: int = DEFAULT_GEMM_ROWS,
    remove_same_camera: bool = True,
    excluded_cameras: Mapping[int, Iterable[int]] | None = None,
    unique_id_cmc: bool = False,
    rerank: bool = False,
    rerank_options: Mapping[str, Any] | None = None,
    map_max_rank: int | None = None,
) -> RankResult:
    """``evaluate_rank`` of ``distance(q_feats, g_feats)`` without ever holding the Q x G matrix.

    Distances are computed ``chunk_size`` queries at a time (numpy GEMM for arrays, torch on the
    tensors' device for tensors) and ranked at once, so peak memory is the features plus
    O(chunk_size x G). ``rerank=True`` streams k-reciprocal re-ranked distances instead
    (``rerank_options``: ``k1``, ``k2``, ``lambda_value``; see ``evaluation.rerank``).
    """
    check_metric(metric)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    q_feats = as_features(q_feats, name="q_feats")
    g_feats = as_features(g_feats, name="g_feats")
    nq, ng = q_feats.shape[0], g_feats.shape[0]
    ranker = _ranker(
        (nq, ng),
        (q_pids, g_pids, q_camids, g_camids),
        max_rank=max_rank,
        chunk_size=None,
        options={
            "remove_same_camera": remove_same_camera,
            "excluded_cameras": excluded_cameras,
            "unique_id_cmc": unique_id_cmc,
            "map_max_rank": map_max_rank,
        },
        rows_name="q_feats (rows = queries)",
        cols_name="g_feats (rows = gallery)",
    )
    blocks: Iterator[tuple[int, np.ndarray]]
    if rerank:
        blocks = iter_re_ranked(
            q_feats, g_feats, metric=metric, chunk_size=chunk_size, **dict(rerank_options or {})
        )
    else:
        if rerank_options:
            raise ValueError("rerank_options given but rerank is False")
        blocks = stream_distance_blocks(q_feats, g_feats, metric=metric, chunk_size=chunk_size)
    for start, block in blocks:
        ranker.add(start, block)
    return ranker.result()
