"""Mean over independently trained trials (RegDB's ten train/test splits).

RegDB is reported as the mean over 10 random splits, one model trained per split (Nguyen et al.,
Sensors 2017; the protocol of the visible-infrared ReID literature since Ye et al., AAAI 2018),
in both directions (thermal -> visible and visible -> thermal). Each trial's run writes one
``metrics.json`` (``scripts/regdb_all_trials.sh`` keeps a copy per trial); this module reads those
files and averages every protocol setting's R1 / R5 / R10 / R20 / mAP / mINP over the trials.

    python -m reid_pipeline.pipelines.report.trials data/08_reporting/regdb_trials/dimn_trial_*.json

Kedro-free (plain JSON in, a table out), so the shell script and notebooks can use it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: the metrics averaged, in table order (fractions in [0, 1] in the files)
METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")


class TrialsError(ValueError):
    """Trial files that cannot be averaged together (names the file and what was expected)."""


def _trial_ids(metrics: Mapping[str, Any], setting: str) -> list[Any]:
    trials = metrics["protocols"]["settings"][setting].get("trials") or []
    return [t.get("trial") for t in trials]


def _check(metrics: Mapping[str, Any], source: str) -> dict[str, Any]:
    settings = (metrics.get("protocols") or {}).get("settings")
    if not isinstance(settings, dict) or not settings:
        raise TrialsError(
            f"{source}: no 'protocols.settings' block; expected a metrics.json written by a "
            "train_<arch> pipeline"
        )
    for name, setting in settings.items():
        mean = setting.get("mean") if isinstance(setting, dict) else None
        if not isinstance(mean, dict) or not all(
            isinstance(mean.get(k), int | float) for k in ("R1", "mAP")
        ):
            raise TrialsError(f"{source}: protocols.settings.{name}.mean has no R1 / mAP numbers")
    return settings


def summarise_trials(
    metrics: Sequence[Mapping[str, Any]], *, sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean and standard deviation over trials of every protocol setting.

    ``metrics``: the parsed ``metrics.json`` of each trial (one model per trial); ``sources``:
    their names for error messages (default ``trial[i]``). All must come from the same dataset
    and architecture, have the same settings, and evaluate different trials.

    Returns one row per setting (in the files' order), columns ``trials`` (count) and, for each
    metric in ``METRICS`` present in every file, ``<metric>`` (mean) and ``<metric>_std``
    (population standard deviation), as fractions.
    """
    if not metrics:
        raise TrialsError("no trial files given")
    names = list(sources) if sources is not None else [f"trial[{i}]" for i in range(len(metrics))]
    if len(names) != len(metrics):
        raise TrialsError(f"sources: {len(names)} names for {len(metrics)} trials")
    first = _check(metrics[0], names[0])
    setting_names = list(first)
    identity = (metrics[0].get("dataset"), metrics[0].get("architecture"))
    seen: dict[Any, str] = {}
    for m, source in zip(metrics, names, strict=True):
        settings = _check(m, source)
        if list(settings) != setting_names:
            raise TrialsError(
                f"{source}: settings {list(settings)} differ from {names[0]}'s {setting_names}"
            )
        if (m.get("dataset"), m.get("architecture")) != identity:
            raise TrialsError(
                f"{source}: dataset/architecture {(m.get('dataset'), m.get('architecture'))} "
                f"differ from {names[0]}'s {identity}"
            )
        for trial in _trial_ids(m, setting_names[0]):
            if trial is not None and trial in seen:
                raise TrialsError(
                    f"{source}: trial {trial!r} was already evaluated in {seen[trial]}; "
                    "each file must come from a different trial"
                )
            if trial is not None:
                seen[trial] = source
    rows = []
    for name in setting_names:
        means = [m["protocols"]["settings"][name]["mean"] for m in metrics]
        row: dict[str, Any] = {"setting": name, "trials": len(metrics)}
        for key in METRICS:
            if all(isinstance(v.get(key), int | float) for v in means):
                values = np.array([float(v[key]) for v in means])
                row[key] = float(values.mean())
                row[f"{key}_std"] = float(values.std())
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting")


def load_trials(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Parse each trial's ``metrics.json``; one clear error for a missing or broken file."""
    out = []
    for path in map(Path, paths):
        if not path.is_file():
            raise TrialsError(f"{path}: no such trial file")
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise TrialsError(f"{path}: not valid JSON ({exc})") from None
    return out


def format_summary(summary: pd.DataFrame, *, title: str = "") -> str:
    """The summary as a plain-text table in percent, ``mean ± std`` per metric."""
    keys = [k for k in METRICS if k in summary.columns]
    width = max(len("setting"), *map(len, summary.index))
    head = f"{'setting':<{width}}  trials  " + "  ".join(f"{k:>13}" for k in keys)
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for name, row in summary.iterrows():
        cells = [f"{100 * row[k]:6.2f} ± {100 * row[f'{k}_std']:5.2f}" for k in keys]
        lines.append(f"{name:<{width}}  {int(row['trials']):>6}  " + "  ".join(cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reid_pipeline.pipelines.report.trials",
        description="Mean over trials (e.g. RegDB's 10) of every protocol setting.",
    )
    parser.add_argument("files", nargs="+", help="one metrics.json per trial")
    parser.add_argument(
        "--expect", type=int, default=None, help="refuse anything but this many trial files"
    )
    parser.add_argument("--output", type=Path, default=None, help="also write the means as JSON")
    args = parser.parse_args(argv)
    try:
        if args.expect is not None and len(args.files) != args.expect:
            raise TrialsError(f"expected {args.expect} trial files, got {len(args.files)}")
        metrics = load_trials(args.files)
        summary = summarise_trials(metrics, sources=args.files)
    except TrialsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    first = metrics[0]
    title = (
        f"{first.get('architecture', '?')} on {first.get('dataset', '?')}: mean ± std over "
        f"{len(metrics)} trials (%)"
    )
    print(format_summary(summary, title=title))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "architecture": first.get("architecture"),
            "dataset": first.get("dataset"),
            "files": [str(f) for f in args.files],
            "settings": summary.reset_index().to_dict("records"),
        }
        args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
