#!/usr/bin/env bash
# RegDB's protocol: one model per train/test split, the mean over the 10 splits, both directions.
#
#   scripts/regdb_all_trials.sh ARCH [extra `kedro run` options]
#
# Runs, for N = 1..10,
#   kedro run --env=regdb --pipeline=train_ARCH --params=datasets.cross_modality.options.trial=N,...
# ARCH is any registered model whose recipe under --env=regdb trains on RegDB (checked against
# the model registry and conf/regdb before anything runs; single-modality models are refused).
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

usage="usage: scripts/regdb_all_trials.sh ARCH [kedro run options]  (ARCH: a registered model that trains on RegDB's visible-infrared data, e.g. agw, fienet, wrimnet)"
arch=${1:-}
if [[ -z "$arch" || "$arch" == -* ]]; then
  echo "$usage" >&2
  exit 2
fi
shift
for option in "$@"; do
  if [[ "$option" == --params* ]]; then
    echo "regdb_all_trials: --params is set by the script (trial, checkpoint_dir)" >&2
    exit 2
  fi
done
# ARCH must be a registered model (reid_pipeline.models) whose recipe under the regdb environment
# (its `<arch>.recipe` or conf/regdb's recipe_override) trains on the dataset slot RegDB fills;
# prints that recipe (its checkpoint_dir is set per trial below) and its dataset slot
python=python
[[ -x .venv/bin/python ]] && python=.venv/bin/python  # the project's, activated or not
selection=$("$python" - "$arch" "$usage" <<'PY'
import sys

from kedro.config import MissingConfigException, OmegaConfigLoader

from reid_pipeline.errors import ReidError
from reid_pipeline.experiment.recipe import selected_recipe
from reid_pipeline.models import list_models
from reid_pipeline.settings import CONFIG_LOADER_ARGS

arch = sys.argv[1]
params = {}


def regdb_recipe(name):
    """(recipe, dataset slot) `name` runs under --env=regdb when it trains on RegDB, else None."""
    if name not in params:
        return None
    recipe = selected_recipe(name, params[name], params.get("recipe_override"))
    slot = params[name][recipe].get("dataset_slot")
    return (recipe, slot) if params["datasets"].get(slot, {}).get("name") == "regdb" else None


def fail(message):
    print(f"regdb_all_trials: {message}", file=sys.stderr)
    sys.exit(2)


try:
    models = list_models()
    if arch not in models:
        fail(f"{arch!r} is no registered model (registered: {', '.join(models)})\n{sys.argv[2]}")
    try:
        params = OmegaConfigLoader("conf", env="regdb", **CONFIG_LOADER_ARGS)["parameters"]
    except MissingConfigException as exc:
        fail(f"cannot read the regdb environment's parameters under conf/ ({exc})")
    if arch not in params:
        fail(f"{arch} has no parameters (conf/base/parameters_train_{arch}.yml)")
    chosen = regdb_recipe(arch)
    if chosen is None:
        # e.g. bot, dimn, pmm: their recipes read datasets.single_modality, which the regdb env
        # leaves alone
        others = [m for m in models if regdb_recipe(m)]
        fail(
            f"{arch} is a single-modality architecture under --env=regdb (its recipe does not "
            f"read RegDB); RegDB is trained by the visible-infrared ones: {', '.join(others)}"
        )
except ReidError as exc:
    fail(str(exc))
print(*chosen)
PY
)
read -r recipe slot <<<"$selection"
command -v kedro >/dev/null || { echo "regdb_all_trials: kedro not on PATH (source .venv/bin/activate)" >&2; exit 2; }

trials=10
out=data/08_reporting/regdb_trials
mkdir -p "$out"
files=()
for n in $(seq 1 "$trials"); do
  echo "regdb_all_trials: $arch, trial $n of $trials"
  kedro run --env=regdb --pipeline="train_$arch" \
    --params="datasets.$slot.options.trial=$n,$arch.$recipe.checkpoint_dir=data/06_models/$arch/regdb_trials/trial_$n" \
    "$@"
  cp "data/08_reporting/$arch/metrics.json" "$out/${arch}_trial_$n.json"
  files+=("$out/${arch}_trial_$n.json")
done
python -m reid_pipeline.pipelines.report.trials --expect "$trials" \
  --output "$out/${arch}_mean.json" "${files[@]}"
