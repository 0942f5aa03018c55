#!/usr/bin/env bash
# The README's two commands. Each installs what is missing (tools/install.sh, idempotent) and then:
#   bash tools/quickstart.sh demo   generate a synthetic nuScenes-format set (if absent), train the demo config
#                                   (pillar LiDAR + camera fusion with the geometric attention bias; GPU if present,
#                                   else CPU), evaluate it with the official nuScenes metric, print where results are
#   bash tools/quickstart.sh test   run the test suite (GPU tests skip on CPU; in parallel on 8+ cores)
#   bash tools/quickstart.sh lint   check the style: ruff (lint), isort (import order), yapf (layout); pyproject.toml
#   bash tools/quickstart.sh format rewrite the files to that style (isort, then yapf)
# Options come from the environment: DEMO_CONFIG, DEMO_WORK_DIR, DEMO_DATA, DEMO_SCENES, DEMO_ITERS, PYTEST_ARGS.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
what=${1:-}
case "$what" in demo|test|lint|format) ;; *) echo "usage: bash tools/quickstart.sh demo|test|lint|format" >&2; exit 2;; esac

bash tools/install.sh
if [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${CONDA_PREFIX:-}" ]; then
  # shellcheck disable=SC1091
  . "$ROOT/.venv/bin/activate"
fi

if [ "$what" = test ]; then
  # 8+ cores (e.g. a GPU machine): parallel workers (pytest-xdist), half the cores, at most 8; CI's 2 cores: serial
  if [ -z "${PYTEST_ARGS+x}" ] && [ "$(nproc)" -ge 8 ]; then
    workers=$(( $(nproc) / 2 )); PYTEST_ARGS="-n $(( workers > 8 ? 8 : workers ))"
  fi
  exec python -m pytest -q ${PYTEST_ARGS:-} tests
fi
if [ "$what" = lint ]; then
  rc=0
  python -m ruff check . || rc=1
  python -m isort --check-only --diff . || { rc=1; echo "lint: imports out of order (bash tools/quickstart.sh format)" >&2; }
  if [ -n "$(python -m yapf --diff --recursive --parallel .)" ]; then
    python -m yapf --diff --recursive . | head -100
    rc=1; echo "lint: layout differs from yapf's (bash tools/quickstart.sh format)" >&2
  fi
  [ $rc = 0 ] && echo "lint: ruff, isort and yapf passed"
  exit $rc
fi
if [ "$what" = format ]; then
  python -m isort . && python -m yapf --in-place --recursive --parallel . && exec python -m ruff check .
fi

exec python tools/run_demo.py
