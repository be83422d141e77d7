#!/usr/bin/env bash
# RegDB's protocol: one model per train/test split, the mean over the 10 splits, both directions.
#
#   scripts/regdb_all_trials.sh ARCH [extra `kedro run` options]
#
# Runs, for N = 1..10,
#   kedro run --env=regdb --pipeline=train_ARCH --params=datasets.cross_modality.options.trial=N,...
# copies each trial's data/08_reporting/ARCH/metrics.json to
# data/08_reporting/regdb_trials/ARCH_trial_N.json, then prints the mean (± std) of the 10
# trials for thermal->visible and visible->thermal and writes them to
# data/08_reporting/regdb_trials/ARCH_mean.json.
#
# Needs the real RegDB download in data/01_raw/RegDB (see conf/regdb/parameters.yml) and the
# project's environment on PATH (`source .venv/bin/activate`). Each trial keeps its own
# checkpoint folder (data/06_models/ARCH/regdb_trials/trial_N): a run never resumes from another
# split's model, and an interrupted script picks up where it stopped when started again.
# Extra options go to every `kedro run` (not --params: the script sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: scripts/regdb_all_trials.sh ARCH [kedro run options]  (ARCH: agw, fienet, wrimnet)"
arch=${1:-}
case "$arch" in
  agw|fienet|wrimnet) shift ;;
  bot|dimn|pmm)
    # their recipes read datasets.single_modality, which the regdb env leaves alone
    echo "regdb_all_trials: $arch is a single-modality architecture; RegDB is trained by the" \
      "visible-infrared ones: agw, fienet, wrimnet" >&2
    exit 2 ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
for option in "$@"; do
  if [[ "$option" == --params* ]]; then
    echo "regdb_all_trials: --params is set by the script (trial, checkpoint_dir)" >&2
    exit 2
  fi
done
command -v kedro >/dev/null || { echo "regdb_all_trials: kedro not on PATH (source .venv/bin/activate)" >&2; exit 2; }

trials=10
out=data/08_reporting/regdb_trials
mkdir -p "$out"
files=()
# the recipe conf/regdb/parameters.yml selects for ARCH (its checkpoint_dir is set per trial)
recipe=paper
[[ "$arch" == agw ]] && recipe=paper_vi
for n in $(seq 1 "$trials"); do
  echo "regdb_all_trials: $arch, trial $n of $trials"
  kedro run --env=regdb --pipeline="train_$arch" \
    --params="datasets.cross_modality.options.trial=$n,$arch.$recipe.checkpoint_dir=data/06_models/$arch/regdb_trials/trial_$n" \
    "$@"
  cp "data/08_reporting/$arch/metrics.json" "$out/${arch}_trial_$n.json"
  files+=("$out/${arch}_trial_$n.json")
done
python -m reid_pipeline.pipelines.report.trials --expect "$trials" \
  --output "$out/${arch}_mean.json" "${files[@]}"
