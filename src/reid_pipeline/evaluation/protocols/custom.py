"""Protocol of your own images (the ``manifest`` and ``folders`` dataset formats).

Every pid is a real identity: no distractor id, no junk label (those are conventions of the
public benchmarks' file names). One trial; queries without a valid gallery match are skipped and
counted per setting (``num_skipped``), as in every other protocol.

- Every record of one modality (all visible, the usual case, or all infrared): the standard
  single-gallery protocol of Market-1501 - each query's gallery without the images of its own pid
  *and* camera, standard CMC. One setting, ``single_query``.
- Both modalities present: cross-modality evaluation. ``infrared_to_visible`` ranks the infrared
  query records against the visible gallery records, ``visible_to_infrared`` the visible query
  records against the infrared gallery records; no same-camera removal (an infrared and a visible
  image never share a camera), standard CMC over the whole gallery of the other modality (no
  sampled galleries, so no trials). A direction without query or gallery records of its
  modalities is left out and named in the result's ``info["not_evaluated"]`` (and logged); asked
  for by name (``directions=``), it is an error.

Rules of all protocols side by side: docs/evaluation.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from reid_pipeline.data.records import Modality, Record
from reid_pipeline.errors import DataError
from reid_pipeline.evaluation.distance import Metric
from reid_pipeline.evaluation.protocols.core import (
    ProtocolResult,
    RankOptions,
    RecordArrays,
    feature_rows,
    record_arrays,
    register_protocol,
    run_ranking,
    setting_result,
)

logger = logging.getLogger(__name__)

#: the dataset formats of one's own images, both evaluated by ``evaluate_custom``
CUSTOM_FORMATS = ("manifest", "folders")
#: cross-modality setting -> (query modality, gallery modality)
DIRECTIONS: dict[str, tuple[int, int]] = {
    "infrared_to_visible": (Modality.INFRARED, Modality.VISIBLE),
    "visible_to_infrared": (Modality.VISIBLE, Modality.INFRARED),
}
_MODALITY_NAMES = {Modality.VISIBLE: "visible", Modality.INFRARED: "infrared"}


def _check_modalities(records: RecordArrays, name: str, dataset: str) -> None:
    bad = sorted(set(np.unique(records.modality).tolist()) - set(_MODALITY_NAMES))
    if bad:
        raise DataError(
            f"{dataset}: {name} records have modality value(s) {bad}; expected 0 (visible) or 1 "
            "(infrared)"
        )


def evaluate_custom(
    q_feats: Any,
    g_feats: Any,
    query: Sequence[Record] | pd.DataFrame,
    gallery: Sequence[Record] | pd.DataFrame,
    *,
    dataset: str = "manifest",
    metric: Metric = "cosine",
    rerank: bool = False,
    rerank_options: Mapping[str, Any] | None = None,
    max_rank: int = 50,
    map_max_rank: int | None = None,
    directions: Sequence[str] | None = None,
) -> ProtocolResult:
    """Your own data: the single-gallery protocol when every record has one modality, both
    cross-modality directions when the records hold both (see the module docstring).

    ``directions``: cross-modality settings to compute, ``"infrared_to_visible"`` /
    ``"visible_to_infrared"`` (default: each one the records allow); refused for data of one
    modality.
    """
    opts = RankOptions.build(
        metric=metric,
        rerank=rerank,
        rerank_options=rerank_options,
        max_rank=max_rank,
        map_max_rank=map_max_rank,
    )
    q, g = record_arrays(query, name="query"), record_arrays(gallery, name="gallery")
    feature_rows(q_feats, len(q), name="q_feats", records="query")
    feature_rows(g_feats, len(g), name="g_feats", records="gallery")
    _check_modalities(q, "query", dataset)
    _check_modalities(g, "gallery", dataset)
    modalities = set(q.modality.tolist()) | set(g.modality.tolist())
    if len(modalities) == 1:
        if directions is not None:
            (only,) = modalities
            raise ValueError(
                f"directions apply to cross-modality data, but every {dataset} query and gallery "
                f"record is {_MODALITY_NAMES[only]} (modality {only}); remove the directions "
                "option"
            )
        qi, gi = np.arange(len(q)), np.arange(len(g))
        r = run_ranking(q_feats, g_feats, q, g, q_idx=qi, g_idx=gi, opts=opts)
        info = {"exclusion": "same pid and same camid", "cmc": "standard"}
        setting = setting_result("single_query", [(0, r, len(q), len(g))], info)
        return ProtocolResult(
            dataset, {"single_query": setting}, {**opts.info(), "mode": "single-modality"}
        )
    return _cross_modality(q_feats, g_feats, q, g, dataset=dataset, opts=opts, asked=directions)


def _cross_modality(
    q_feats: Any,
    g_feats: Any,
    q: RecordArrays,
    g: RecordArrays,
    *,
    dataset: str,
    opts: RankOptions,
    asked: Sequence[str] | None,
) -> ProtocolResult:
    if isinstance(asked, str):
        asked = (asked,)
    wanted = tuple(DIRECTIONS) if asked is None else tuple(asked)
    bad = [d for d in wanted if d not in DIRECTIONS]
    if bad or not wanted:
        raise ValueError(
            f"{dataset} directions must be among {list(DIRECTIONS)}, got {list(wanted)}"
        )
    settings, not_evaluated = {}, {}
    for direction in wanted:
        q_mod, g_mod = DIRECTIONS[direction]
        qi, gi = np.flatnonzero(q.modality == q_mod), np.flatnonzero(g.modality == g_mod)
        if len(qi) == 0 or len(gi) == 0:
            side, mod = ("query", q_mod) if len(qi) == 0 else ("gallery", g_mod)
            reason = f"no {_MODALITY_NAMES[mod]} (modality {mod}) {side} records"
            if asked is not None:
                raise DataError(f"{dataset}: cannot evaluate {direction}: {reason}")
            not_evaluated[direction] = reason
            continue
        r = run_ranking(
            q_feats, g_feats, q, g, q_idx=qi, g_idx=gi, opts=opts, remove_same_camera=False
        )
        settings[direction] = setting_result(
            direction,
            [(0, r, len(qi), len(gi))],
            {
                "exclusion": "none",
                "cmc": "standard",
                "query_modality": _MODALITY_NAMES[q_mod],
                "gallery_modality": _MODALITY_NAMES[g_mod],
            },
        )
    # both modalities occur, so at least one direction has queries and a gallery
    for direction, reason in not_evaluated.items():
        logger.warning("%s: %s not evaluated: %s", dataset, direction, reason)
    info: dict[str, Any] = {**opts.info(), "mode": "cross-modality"}
    if not_evaluated:
        info["not_evaluated"] = not_evaluated
    return ProtocolResult(dataset, settings, info)


for _name in CUSTOM_FORMATS:
    register_protocol(_name, evaluate_custom, dataset=_name)
