"""Evaluation protocols: one result type for every dataset, one dispatcher.

``evaluate_protocol(dataset, q_feats, g_feats, query, gallery, info, *, metric, rerank, ...)``
returns a ``ProtocolResult``: per setting (``"single_query"``, ``"all_search/single_shot"``,
``"thermal_to_visible"``, ``"ir_to_vis"``, ...) the per-trial R1/R5/R10/R20/mAP/mINP, their mean
and (population) std, the mean CMC, and ``to_dict()`` JSON for DVC metrics.

- Single-modality (market1501, dukemtmc, cuhk03 - the 767/700 "new protocol" uses the Market
  metric -, msmt17): one trial, the standard same-pid-same-camera removal, standard CMC.
- SYSU-MM01 (``sysu.py``), LLCM (``llcm.py``): per-trial sampled galleries, unique-id CMC.
- RegDB: thermal->visible as the loader gives it (query = thermal test images, gallery = visible
  test images of the trial) and visible->thermal with the roles swapped; no exclusion, standard
  CMC (``eval_regdb`` of the VI-ReID baseline code). One model per trial: evaluate each trial and
  merge them with ``ProtocolResult.combine``.

Inputs: query / gallery features (numpy or torch; row i belongs to record i) and the records
(``Record(path, pid, camid, modality)``, or a manifest DataFrame) with the loader's ``Splits.info``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reid_pipeline.data.records import Record, frame_to_records
from reid_pipeline.evaluation.distance import Metric, check_metric, is_tensor
from reid_pipeline.evaluation.rank import RankResult, check_max_rank, evaluate_from_features

METRIC_KEYS: tuple[str, ...] = ("R1", "R5", "R10", "R20", "mAP", "mINP")
SINGLE_MODALITY = ("market1501", "dukemtmc", "cuhk03", "msmt17")


@dataclass(frozen=True, eq=False)
class SettingResult:
    """One evaluation setting over its trials."""

    name: str
    trials: tuple[dict[str, Any], ...]  #: per trial: metrics, sizes, the trial id
    cmc: np.ndarray  #: mean CMC over the trials
    info: dict[str, Any] = field(default_factory=dict)
    rank_results: tuple[RankResult, ...] = field(default=(), repr=False)

    @property
    def mean(self) -> dict[str, float]:
        return {k: float(np.mean([t[k] for t in self.trials])) for k in self._keys()}

    @property
    def std(self) -> dict[str, float]:
        return {k: float(np.std([t[k] for t in self.trials])) for k in self._keys()}

    def _keys(self) -> list[str]:
        return [k for k in METRIC_KEYS if all(k in t for t in self.trials)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "num_trials": len(self.trials),
            "trials": [dict(t) for t in self.trials],
            "cmc": [float(v) for v in self.cmc],
            "info": dict(self.info),
        }


@dataclass(frozen=True, eq=False)
class ProtocolResult:
    """Every setting of one dataset's protocol (``result["all_search/single_shot"].mean``)."""

    dataset: str
    settings: dict[str, SettingResult]
    info: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> SettingResult:
        if name not in self.settings:
            raise KeyError(f"no setting {name!r}; this result has {list(self.settings)}")
        return self.settings[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able ``{"dataset", "info", "settings": {name: {mean, std, trials, cmc, info}}}``."""
        return {
            "dataset": self.dataset,
            "info": dict(self.info),
            "settings": {name: s.to_dict() for name, s in self.settings.items()},
        }

    def metrics(self) -> dict[str, float]:
        """Flat ``{"<setting>/<metric>": mean}``, e.g. for a DVC metrics file."""
        return {f"{n}/{k}": v for n, s in self.settings.items() for k, v in s.mean.items()}

    def table(self) -> str:
        """A plain-text table of the means (percent)."""
        width = max([len("setting"), *map(len, self.settings)])
        lines = [f"{'setting':<{width}} " + " ".join(f"{k:>6}" for k in METRIC_KEYS)]
        for name, s in self.settings.items():
            mean = s.mean
            lines.append(
                f"{name:<{width}} "
                + " ".join(
                    f"{100 * mean[k]:6.2f}" if k in mean else f"{'-':>6}" for k in METRIC_KEYS
                )
            )
        return "\n".join(lines)

    @classmethod
    def combine(cls, results: Sequence[ProtocolResult]) -> ProtocolResult:
        """Merge results of the same dataset (e.g. RegDB's 10 trials): trials are concatenated per
        setting and the CMC is re-averaged over all of them."""
        if not results:
            raise ValueError("combine needs at least one ProtocolResult")
        names = {r.dataset for r in results}
        if len(names) != 1:
            raise ValueError(f"cannot combine results of different datasets: {sorted(names)}")
        settings: dict[str, SettingResult] = {}
        for r in results:
            for name, s in r.settings.items():
                prev = settings.get(name)
                trials = (*prev.trials, *s.trials) if prev else s.trials
                ranks = (*prev.rank_results, *s.rank_results) if prev else s.rank_results
                cmcs = [*([prev.cmc] * len(prev.trials) if prev else []), *[s.cmc] * len(s.trials)]
                settings[name] = SettingResult(name, trials, np.mean(cmcs, axis=0), s.info, ranks)
        return cls(results[0].dataset, settings, dict(results[0].info))


# --------------------------------------------------------------------------- shared plumbing


@dataclass(frozen=True)
class RecordArrays:
    """Records as columns."""

    paths: list[str]
    pids: np.ndarray
    camids: np.ndarray
    modality: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


def record_arrays(records: Sequence[Record] | pd.DataFrame, *, name: str) -> RecordArrays:
    """``(path, pid, camid, modality)`` records (or a manifest frame) -> arrays; clear errors."""
    if isinstance(records, pd.DataFrame):
        records = frame_to_records(records)
    rows = list(records)
    if not rows:
        raise ValueError(f"{name} has no records")
    try:
        return RecordArrays(
            paths=[str(r.path) for r in rows],
            pids=np.array([int(r.pid) for r in rows], dtype=np.int64),
            camids=np.array([int(r.camid) for r in rows], dtype=np.int64),
            modality=np.array([int(getattr(r, "modality", 0)) for r in rows], dtype=np.int64),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be records with path, pid, camid and modality fields: {exc}"
        ) from exc


def feature_rows(feats: Any, n: int, *, name: str, records: str) -> Any:
    """Check that ``feats`` has one row per record; return it unchanged (numpy or torch)."""
    shape = tuple(feats.shape) if hasattr(feats, "shape") else np.shape(feats)
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D (num_images, dim) array, got shape {shape}")
    if shape[0] != n:
        raise ValueError(f"{name} has {shape[0]} rows but {records} has {n} records")
    return feats


def take(feats: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of a numpy array or torch tensor (on its device)."""
    if is_tensor(feats):
        import torch

        return feats[torch.as_tensor(idx, device=feats.device)]
    return np.asarray(feats)[idx]


@dataclass(frozen=True)
class RankOptions:
    """What every protocol passes through to ``evaluate_from_features``."""

    metric: Metric = "cosine"
    rerank: bool = False
    rerank_options: Mapping[str, Any] | None = None
    max_rank: int = 50

    def info(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "rerank": self.rerank,
            "rerank_options": dict(self.rerank_options or {}),
        }

    @classmethod
    def build(
        cls,
        *,
        metric: Metric = "cosine",
        rerank: bool = False,
        rerank_options: Mapping[str, Any] | None = None,
        max_rank: int = 50,
    ) -> RankOptions:
        """Validated options (one clear error per bad value)."""
        check_metric(metric)
        if rerank_options and not rerank:
            raise ValueError("rerank_options given but rerank is False")
        if rerank_options is not None and not isinstance(rerank_options, Mapping):
            raise ValueError(
                f"rerank_options must be a mapping, got {type(rerank_options).__name__}"
            )
        return cls(metric, bool(rerank), rerank_options, check_max_rank(max_rank))


def run_ranking(
    q_feats: Any,
    g_feats: Any,
    q: RecordArrays,
    g: RecordArrays,
    *,
    q_idx: np.ndarray,
    g_idx: np.ndarray,
    opts: RankOptions,
    **rank_kwargs: Any,
) -> RankResult:
    """Rank the queries ``q_idx`` against the gallery items ``g_idx``."""
    return evaluate_from_features(
        take(q_feats, q_idx),
        take(g_feats, g_idx),
        q.pids[q_idx],
        g.pids[g_idx],
        q.camids[q_idx],
        g.camids[g_idx],
        metric=opts.metric,
        max_rank=opts.max_rank,
        rerank=opts.rerank,
        rerank_options=opts.rerank_options if opts.rerank else None,
        **rank_kwargs,
    )


def trial_entry(result: RankResult, trial: Any, num_query: int, num_gallery: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"trial": trial}
    entry.update(result.summary())
    entry.update(
        num_query=num_query,
        num_gallery=num_gallery,
        num_valid=result.num_valid,
        num_skipped=result.num_skipped,
    )
    return entry


def setting_result(
    name: str, runs: Sequence[tuple[Any, RankResult, int, int]], info: dict[str, Any]
) -> SettingResult:
    """``runs``: (trial id, result, #queries, #gallery) per trial."""
    return SettingResult(
        name=name,
        trials=tuple(trial_entry(r, t, nq, ng) for t, r, nq, ng in runs),
        cmc=np.mean([r.cmc for _, r, _, _ in runs], axis=0),
        info=info,
        rank_results=tuple(r for _, r, _, _ in runs),
    )


def reject_unknown(options: Mapping[str, Any], dataset: str) -> None:
    if options:
        raise ValueError(
            f"unknown option(s) {sorted(options)} for the {dataset} protocol; it takes none"
        )


# --------------------------------------------------------------------------- protocols


def evaluate_single_modality(
    q_feats: Any,
    g_feats: Any,
    query: Sequence[Record] | pd.DataFrame,
    gallery: Sequence[Record] | pd.DataFrame,
    *,
    dataset: str = "market1501",
    metric: Metric = "cosine",
    rerank: bool = False,
    rerank_options: Mapping[str, Any] | None = None,
    max_rank: int = 50,
) -> ProtocolResult:
    """Market-1501 / DukeMTMC-reID / CUHK03-NP / MSMT17: one ranking, standard rules."""
    opts = RankOptions.build(
        metric=metric, rerank=rerank, rerank_options=rerank_options, max_rank=max_rank
    )
    q, g = record_arrays(query, name="query"), record_arrays(gallery, name="gallery")
    feature_rows(q_feats, len(q), name="q_feats", records="query")
    feature_rows(g_feats, len(g), name="g_feats", records="gallery")
    qi, gi = np.arange(len(q)), np.arange(len(g))
    r = run_ranking(q_feats, g_feats, q, g, q_idx=qi, g_idx=gi, opts=opts)
    info = {"exclusion": "same pid and same camid", "cmc": "standard"}
    setting = setting_result("single_query", [(0, r, len(q), len(g))], info)
    return ProtocolResult(dataset, {"single_query": setting}, opts.info())


def evaluate_regdb(
    q_feats: Any,
    g_feats: Any,
    query: Sequence[Record] | pd.DataFrame,
    gallery: Sequence[Record] | pd.DataFrame,
    *,
    info: Mapping[str, Any] | None = None,
    metric: Metric = "cosine",
    rerank: bool = False,
    rerank_options: Mapping[str, Any] | None = None,
    max_rank: int = 50,
    directions: Sequence[str] = ("thermal_to_visible", "visible_to_thermal"),
) -> ProtocolResult:
    """RegDB, one trial: thermal->visible (query = thermal) and visible->thermal (roles swapped).

    ``info["trial"]`` (from the loader) labels the trial; ``directions`` picks the settings.
    """
    opts = RankOptions.build(
        metric=metric, rerank=rerank, rerank_options=rerank_options, max_rank=max_rank
    )
    info = dict(info or {})
    if isinstance(directions, str):
        directions = (directions,)
    q, g = record_arrays(query, name="query"), record_arrays(gallery, name="gallery")
    feature_rows(q_feats, len(q), name="q_feats", records="query")
    feature_rows(g_feats, len(g), name="g_feats", records="gallery")
    if np.any(q.modality != 1) or np.any(g.modality != 0):
        raise ValueError(
            "RegDB query records must be thermal (modality 1) and gallery records visible "
            "(modality 0), as the regdb loader returns them"
        )
    trial = info.get("trial")
    qi, gi = np.arange(len(q)), np.arange(len(g))
    settings = {}
    for direction in directions:
        if direction == "thermal_to_visible":
            r = run_ranking(
                q_feats, g_feats, q, g, q_idx=qi, g_idx=gi, opts=opts, remove_same_camera=False
            )
            sizes = (len(q), len(g))
        elif direction == "visible_to_thermal":
            r = run_ranking(
                g_feats, q_feats, g, q, q_idx=gi, g_idx=qi, opts=opts, remove_same_camera=False
            )
            sizes = (len(g), len(q))
        else:
            raise ValueError(
                f"RegDB direction must be 'thermal_to_visible' or 'visible_to_thermal', got "
                f"{direction!r}"
            )
        settings[direction] = setting_result(
            direction, [(trial, r, *sizes)], {"exclusion": "none", "cmc": "standard"}
        )
    return ProtocolResult("regdb", settings, {**opts.info(), "trial": trial})


def _dispatch_table() -> dict[str, Callable[..., ProtocolResult]]:
    from reid_pipeline.evaluation.llcm import evaluate_llcm
    from reid_pipeline.evaluation.sysu import evaluate_sysu_mm01

    return {"sysu_mm01": evaluate_sysu_mm01, "llcm": evaluate_llcm, "regdb": evaluate_regdb}


def evaluate_protocol(  # noqa: PLR0917 - (dataset, features, records, info) as the brief fixes it
    dataset: str,
    q_feats: Any,
    g_feats: Any,
    query: Sequence[Record] | pd.DataFrame,
    gallery: Sequence[Record] | pd.DataFrame,
    info: Mapping[str, Any] | None = None,
    *,
    metric: Metric = "cosine",
    rerank: bool = False,
    rerank_options: Mapping[str, Any] | None = None,
    max_rank: int = 50,
    **protocol_options: Any,
) -> ProtocolResult:
    """Evaluate embeddings with ``dataset``'s protocol.

    ``dataset``: ``market1501``, ``dukemtmc``, ``cuhk03``, ``msmt17``, ``sysu_mm01``, ``regdb`` or
    ``llcm``. ``q_feats`` / ``g_feats``: one row per query / gallery record. ``info``: the
    loader's ``Splits.info``. ``metric``: ``cosine`` / ``euclidean`` / ``inner_product``.
    ``rerank``: k-reciprocal re-ranking (``rerank_options``: ``k1``, ``k2``, ``lambda_value``).
    ``protocol_options`` go to the protocol (SYSU-MM01: ``modes``, ``shots``, ``sampler``,
    ``perm_path``, ``trials``; RegDB: ``directions``; LLCM: ``variant``, ``directions``,
    ``trials``); unknown ones are refused by name.
    """
    common = {
        "metric": metric,
        "rerank": rerank,
        "rerank_options": rerank_options,
        "max_rank": max_rank,
    }
    RankOptions.build(**common)  # fail early, before any work
    if dataset in SINGLE_MODALITY:
        reject_unknown(protocol_options, dataset)
        return evaluate_single_modality(q_feats, g_feats, query, gallery, dataset=dataset, **common)
    table = _dispatch_table()
    if dataset not in table:
        raise ValueError(
            f"unknown dataset {dataset!r}; expected one of {[*SINGLE_MODALITY, *table]}"
        )
    protocol = table[dataset]
    accepted = [
        p.name
        for p in inspect.signature(protocol).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in {"info", *common}
    ]
    unknown = sorted(set(protocol_options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for the {dataset} protocol; accepted: {accepted}"
        )
    return protocol(q_feats, g_feats, query, gallery, info=info, **common, **protocol_options)
