#!/usr/bin/env bash
# Set up (if needed) and run the main job: DIMN trained and evaluated on the embedded synthetic
# Market-1501-layout dataset (generated on first use into data/01_raw).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export KEDRO_DISABLE_TELEMETRY=true
exec .venv/bin/kedro run --pipeline=train_dimn "$@"
