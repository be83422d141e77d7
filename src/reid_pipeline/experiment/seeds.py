"""Mean and spread over seeds: every architecture trained with several seeds, recipe unchanged.

    python -m reid_pipeline.experiment.seeds [--archs bot dimn ...] [--seeds 0 1 2] [--env ENV]

For each architecture (default: every registered one) and seed, in that order, it runs

    kedro run --pipeline=train_<arch>
        --params=<arch>.<recipe>.seed=<s>,<arch>.<recipe>.fit.resume=false

(``<recipe>``: the one the environment selects, as ``dvc repro`` does) and copies the run's
``data/08_reporting/<arch>/metrics.json`` to ``data/08_reporting/seeds/<arch>_seed<s>.json`` with
the digest of what it ran (recipe, dataset slot, protocol options). A pair whose copy exists with
the current digest is not trained again, so an interrupted comparison continues where it
stopped, and a changed recipe, dataset or protocol retrains. After every run,
``data/08_reporting/seeds/summary.md`` (and ``summary.json``): per architecture the mean,
minimum and maximum of R1 / mAP / mINP over its kept seeds (every run kept there whose digest is
still the current one, from this invocation or an earlier one), and the
training budget (images seen) with whether it is equal across each dataset's architectures.

Each run overwrites ``data/06_models/<arch>`` and ``data/08_reporting/<arch>`` like any
``kedro run``; after a ``dvc repro``, ``dvc checkout`` brings back the DVC run's outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reid_pipeline.engine.checkpoint import atomic_write_text
from reid_pipeline.io.digest import json_sha256

OUT = Path("data/08_reporting/seeds")
METRICS = ("R1", "mAP", "mINP")


def result_file(out: Path, arch: str, seed: int) -> Path:
    return out / f"{arch}_seed{seed}.json"


def run_digest(params: Mapping[str, Any], arch: str, seed: int) -> str:
    """What a stored result must have been trained with: the selected recipe as the run reads
    it (typed, every default filled in, its seed replaced), the dataset it trains on and that
    dataset's protocol options. A change to any of them, a changed default included, trains
    again."""
    from reid_pipeline.experiment.recipe import resolve_experiment, selected_recipe

    block = {k: dict(v) if isinstance(v, Mapping) else v for k, v in params[arch].items()}
    name = selected_recipe(arch, block, params.get("recipe_override"))
    block[name]["seed"] = int(seed)
    experiment = resolve_experiment(
        arch,
        block,
        datasets=params.get("datasets") or {},
        protocols=params.get("protocols"),
        recipe_override=params.get("recipe_override"),
    )
    return json_sha256(
        {
            "recipe_name": name,
            "recipe": experiment.recipe.model_dump(mode="json"),
            "dataset": experiment.dataset.model_dump(mode="json"),
            "protocol": experiment.protocol,
        }
    )


def is_done(path: Path, digest: str) -> bool:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(stored, dict) and stored.get("seeds", {}).get("digest") == digest


def _atomic_json(path: Path, doc: Any) -> None:
    atomic_write_text(json.dumps(doc, indent=2) + "\n", path)


def summarise_seeds(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per architecture from its per-seed ``metrics.json`` documents: ``seeds`` (the
    list), ``<metric>_mean`` / ``_min`` / ``_max`` in percent, ``images_seen`` ({seed: count or
    None}; the same for every seed unless the recipes draw their validation hold-out with
    different ``validation.seed`` values) and ``dataset``."""
    rows = []
    for arch, docs in results.items():
        if not docs:
            continue
        row: dict[str, Any] = {
            "architecture": arch,
            "dataset": docs[0].get("dataset", "?"),
            "seeds": [int(d["seeds"]["seed"]) for d in docs],
        }
        for name in METRICS:
            values = np.array([100.0 * float(d["trained"][name]) for d in docs])
            row[f"{name}_mean"] = float(values.mean())
            row[f"{name}_min"] = float(values.min())
            row[f"{name}_max"] = float(values.max())
        row["images_seen"] = {
            int(d["seeds"]["seed"]): (d.get("training") or {}).get("images_seen") for d in docs
        }
        rows.append(row)
    return pd.DataFrame(rows)


def _seen_cell(seen: Mapping[int, Any]) -> str:
    counts = [int(v) for v in seen.values() if v is not None]
    if not counts:
        return "-"
    low, high = min(counts), max(counts)
    text = f"{low:,}" if low == high else f"{low:,}-{high:,}"
    return text if len(counts) == len(seen) else f"{text} (not every run recorded it)"


def seeds_budget_notes(table: pd.DataFrame) -> list[str]:
    """Per dataset: whether, seed by seed, its architectures saw the same number of images."""
    notes = []
    for dataset, rows in table.groupby("dataset", sort=False):
        records = rows.to_dict("records")
        names = ", ".join(r["architecture"] for r in records)
        by_seed: dict[int, dict[str, Any]] = {}
        for r in records:
            for seed, count in r["images_seen"].items():
                by_seed.setdefault(seed, {})[r["architecture"]] = count
        if any(c is None for counts in by_seed.values() for c in counts.values()):
            notes.append(f"{dataset}: images seen not recorded for every run (an older run).")
            continue
        unequal = {s: c for s, c in sorted(by_seed.items()) if len(set(c.values())) > 1}
        if unequal:
            listed = "; ".join(
                f"seed {s}: " + ", ".join(f"{a} {int(n):,}" for a, n in c.items())
                for s, c in unequal.items()
            )
            notes.append(f"{dataset}: **unequal budgets** ({listed}); compare with care.")
        else:
            notes.append(
                f"{dataset}: equal budget, with each seed every architecture ({names}) saw the "
                "same number of training images."
            )
    return notes


def render_seeds(table: pd.DataFrame) -> str:
    lines = [
        "# Mean and spread over seeds",
        "",
        "| architecture | dataset | seeds | R1 (%) | mAP (%) | mINP (%) | images seen |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in table.to_dict("records"):
        cells = [row["architecture"], row["dataset"], ", ".join(map(str, row["seeds"]))]
        for name in METRICS:
            mean, low, high = (row[f"{name}_{k}"] for k in ("mean", "min", "max"))
            cells.append(f"**{mean:.1f}** ({low:.1f}-{high:.1f})")
        cells.append(_seen_cell(row["images_seen"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean over the seeds, (minimum-maximum) beside it; every run trains the recipe as "
        "configured, only its seed differs.",
        "",
        *seeds_budget_notes(table),
    ]
    return "\n".join(lines) + "\n"


def _parameters(env: str | None) -> dict[str, Any]:
    from kedro.config import OmegaConfigLoader

    from reid_pipeline.settings import CONFIG_LOADER_ARGS

    return dict(OmegaConfigLoader("conf", env=env, **CONFIG_LOADER_ARGS)["parameters"])


def run_seeds(
    archs: Sequence[str], seeds: Sequence[int], *, env: str | None = None, out: Path = OUT
) -> pd.DataFrame:
    from reid_pipeline.experiment.recipe import selected_recipe

    params = _parameters(env)
    missing = [a for a in archs if a not in params]
    if missing:
        raise SystemExit(f"seeds: no parameters for {missing} (conf/base/parameters_train_*.yml)")
    total, done = len(archs) * len(seeds), 0
    for arch in archs:
        recipe = selected_recipe(arch, params[arch], params.get("recipe_override"))
        for seed in seeds:
            done += 1
            path = result_file(out, arch, seed)
            digest = run_digest(params, arch, seed)
            if not is_done(path, digest):
                print(f"seeds: [{done}/{total}] {arch} ({recipe}) seed {seed}", flush=True)
                command = [
                    sys.executable,
                    "-m",
                    "kedro",
                    "run",
                    f"--pipeline=train_{arch}",
                    f"--params={arch}.{recipe}.seed={seed},{arch}.{recipe}.fit.resume=false",
                ]
                if env:
                    command.append(f"--env={env}")
                if subprocess.run(command, check=False).returncode != 0:
                    raise SystemExit(f"seeds: `{' '.join(command)}` failed; rerun to continue")
                metrics = json.loads(
                    Path(f"data/08_reporting/{arch}/metrics.json").read_text(encoding="utf-8")
                )
                metrics["seeds"] = {"seed": seed, "recipe": recipe, "digest": digest}
                _atomic_json(path, metrics)
            else:
                print(f"seeds: [{done}/{total}] {arch} seed {seed}: done before", flush=True)
            # after every run (a stopped comparison keeps its table): every kept run of the
            # current recipes, also those of earlier invocations (other archs or seeds)
            table = write_summary(kept_results(out, params), out)
    print(render_seeds(table))
    return table


def kept_results(out: Path, params: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The runs kept in ``out`` that the current parameters would train the same way (their
    digest matches), by architecture (in name order) and seed."""

    found: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for path in sorted(out.glob("*_seed*.json")):
        arch, _, seed_text = path.stem.rpartition("_seed")
        if arch not in params or not seed_text.isdigit():
            continue
        if is_done(path, run_digest(params, arch, int(seed_text))):
            doc = json.loads(path.read_text(encoding="utf-8"))
            found.setdefault(arch, []).append((int(seed_text), doc))
    return {
        arch: [doc for _, doc in sorted(runs, key=lambda r: r[0])]
        for arch, runs in sorted(found.items())
    }


def write_summary(results: Mapping[str, Sequence[Mapping[str, Any]]], out: Path) -> pd.DataFrame:
    """``summary.md`` and ``summary.json`` of the runs so far (written atomically)."""
    table = summarise_seeds(results)
    _atomic_json(out / "summary.json", json.loads(table.to_json(orient="records")))
    atomic_write_text(render_seeds(table), out / "summary.md")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    from reid_pipeline.models import list_models

    parser = argparse.ArgumentParser(
        prog="python -m reid_pipeline.experiment.seeds", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--archs", nargs="+", default=None, help="default: every registered one")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--env", default=os.environ.get("KEDRO_ENV"), help="kedro environment")
    args = parser.parse_args(argv)
    models = list_models()
    archs = args.archs or models
    unknown = [a for a in archs if a not in models]
    if unknown:
        parser.error(f"unknown architecture(s) {unknown}; registered: {', '.join(models)}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds repeats a seed: {args.seeds}")
    run_seeds(archs, args.seeds, env=args.env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
