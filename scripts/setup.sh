#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project with its exact pins.
#   scripts/setup.sh          runtime dependencies (main job)
#   scripts/setup.sh --dev    plus tests, lint, notebook and browser-test tools
# Idempotent: a second call only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" - <<'PY' || { echo "setup: Python 3.11 is required (found $($PYTHON --version))" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)
PY

extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev]"

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed${extras:+-dev}"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  echo "setup: installing reid_pipeline${extras} (torch is large: a few minutes on a fresh machine)"
  .venv/bin/python -m pip install --disable-pip-version-check -q -e ".${extras}"
  touch "$stamp"
fi
export KEDRO_DISABLE_TELEMETRY=true
echo "setup: ready ($(.venv/bin/python -c 'import torch, kedro; print(f"torch {torch.__version__}, kedro {kedro.__version__}")'))"
