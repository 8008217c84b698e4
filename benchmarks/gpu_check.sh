#!/usr/bin/env bash
# The prepared GPU check (issue 17): see benchmarks/gpu_check.py. Run from the repository root, with the
# project's venv active or at .venv; --dry runs every step on the CPU (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" benchmarks/gpu_check.py "$@"
