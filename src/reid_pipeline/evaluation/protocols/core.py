"""What every evaluation protocol shares: the result types, the record plumbing, the ranking call,
and the registry of protocols keyed by dataset format name.

A protocol module (``single.py``, ``sysu.py``, ``regdb.py``, ``llcm.py``, ``custom.py``) defines
an ``evaluate_*`` function and registers it under the format names ``load_dataset`` uses
(``register_protocol("regdb", evaluate_regdb)``); ``evaluate_protocol`` (the package) dispatches
on that name. A protocol function takes ``(q_feats, g_feats, query, gallery, *, [info,] metric,
rerank, rerank_options, max_rank, **its own keyword-only options)`` and returns a
``ProtocolResult``: per setting (``"single_query"``, ``"all_search/single_shot"``,
``"thermal_to_visible"``, ...) the per-trial R1/R5/R10/R20/mAP/mINP, their mean and (population)
std, the mean CMC, and ``to_dict()`` JSON for DVC metrics. The rules of each protocol:
docs/evaluation.md.

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
from reid_pipeline.evaluation.distance import Metric, check_metric, take_rows
from reid_pipeline.evaluation.rank import (
    RankResult,
    check_map_max_rank,
    check_max_rank,
    evaluate_from_features,
)

METRIC_KEYS: tuple[str, ...] = ("R1", "R5", "R10", "R20", "mAP", "mINP")
#: the keyword arguments every protocol takes besides ``info`` and its own options
COMMON_OPTIONS: tuple[str, ...] = ("metric", "rerank", "rerank_options", "max_rank", "map_max_rank")


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


@dataclass(frozen=True)
class RankOptions:
    """What every protocol passes through to ``evaluate_from_features``."""

    metric: Metric = "cosine"
    rerank: bool = False
    rerank_options: Mapping[str, Any] | None = None
    max_rank: int = 50
    map_max_rank: int | None = None

    def info(self) -> dict[str, Any]:
        info = {
            "metric": self.metric,
            "rerank": self.rerank,
            "rerank_options": dict(self.rerank_options or {}),
        }
        if self.map_max_rank is not None:  # a cut mAP is not the standard one: say so
            info["map_max_rank"] = self.map_max_rank
        return info

    @classmethod
    def build(
        cls,
        *,
        metric: Metric = "cosine",
        rerank: bool = False,
        rerank_options: Mapping[str, Any] | None = None,
        max_rank: int = 50,
        map_max_rank: int | None = None,
    ) -> RankOptions:
        """Validated options (one clear error per bad value)."""
        check_metric(metric)
        if rerank_options and not rerank:
            raise ValueError("rerank_options given but rerank is False")
        if rerank_options is not None and not isinstance(rerank_options, Mapping):
            raise ValueError(
                f"rerank_options must be a mapping, got {type(rerank_options).__name__}"
            )
        return cls(
            metric,
            bool(rerank),
            rerank_options,
            check_max_rank(max_rank),
            check_map_max_rank(map_max_rank),
        )


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
        take_rows(q_feats, q_idx),
        take_rows(g_feats, g_idx),
        q.pids[q_idx],
        g.pids[g_idx],
        q.camids[q_idx],
        g.camids[g_idx],
        metric=opts.metric,
        max_rank=opts.max_rank,
        map_max_rank=opts.map_max_rank,
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


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Protocol:
    """One dataset format's protocol: ``evaluate`` called with ``bound`` (keyword arguments fixed
    at registration, e.g. the single-modality protocol's ``dataset``) and the caller's options."""

    name: str
    evaluate: Callable[..., ProtocolResult]
    bound: Mapping[str, Any] = field(default_factory=dict)

    def _keyword_only(self) -> list[str]:
        return [
            p.name
            for p in inspect.signature(self.evaluate).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]

    @property
    def options(self) -> list[str]:
        """The protocol's own options (``modes``, ``trials``, ...), in signature order."""
        fixed = {"info", *COMMON_OPTIONS, *self.bound}
        return [name for name in self._keyword_only() if name not in fixed]

    def __call__(  # noqa: PLR0917 - (features, records, info) as evaluate_protocol takes them
        self,
        q_feats: Any,
        g_feats: Any,
        query: Sequence[Record] | pd.DataFrame,
        gallery: Sequence[Record] | pd.DataFrame,
        info: Mapping[str, Any] | None,
        common: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> ProtocolResult:
        accepted = self.options
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            takes = f"accepted: {accepted}" if accepted else "it takes none"
            raise ValueError(f"unknown option(s) {unknown} for the {self.name} protocol; {takes}")
        extra = {"info": info} if "info" in self._keyword_only() else {}
        if "map_max_rank" not in self._keyword_only():  # a protocol written before the option
            common = dict(common)
            if common.pop("map_max_rank", None) is not None:
                raise ValueError(
                    f"the {self.name} protocol does not take map_max_rank; evaluate it without "
                    "the cut (map_max_rank: null)"
                )
        return self.evaluate(
            q_feats, g_feats, query, gallery, **extra, **common, **self.bound, **options
        )


_PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(name: str, evaluate: Callable[..., ProtocolResult], **bound: Any) -> Protocol:
    """Register ``evaluate`` as the protocol of the dataset format ``name`` (the name
    ``load_dataset`` takes and writes to ``Splits.info["dataset"]``); ``bound``: keyword arguments
    always passed to it. One protocol per name."""
    if name in _PROTOCOLS:
        raise ValueError(
            f"a protocol for {name!r} is already registered ({_PROTOCOLS[name].evaluate.__name__})"
        )
    protocol = Protocol(name, evaluate, dict(bound))
    _PROTOCOLS[name] = protocol
    return protocol


def protocol_names() -> list[str]:
    """The dataset format names with a registered protocol, sorted."""
    return sorted(_PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    """The protocol registered for ``name``; ValueError listing the known names otherwise."""
    if name not in _PROTOCOLS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {protocol_names()}")
    return _PROTOCOLS[name]
