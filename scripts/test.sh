#!/usr/bin/env bash
# Install the project with its test dependencies into .venv (created if missing) and run the suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/emulator -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check sfbulk tap_sfbulk target_sfbulk tests bench scripts
.venv/bin/mypy sfbulk tap_sfbulk target_sfbulk
exec .venv/bin/pytest -n 2 "$@"
