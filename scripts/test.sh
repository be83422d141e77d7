#!/usr/bin/env bash
# Set up (if needed) and run the full test suite, lint included.
# The kedro-viz browser test needs Debian's chromium; it is installed here when missing (root +
# apt), otherwise that test is skipped with the reason printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export KEDRO_DISABLE_TELEMETRY=true
if ! command -v chromium >/dev/null 2>&1 && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "test: installing Debian chromium for the kedro-viz browser test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test: chromium could not be installed; the browser test will be skipped"
fi
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
exec .venv/bin/python -m pytest "$@"
