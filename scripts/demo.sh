#!/usr/bin/env bash
# The main job: copy a Salesforce org into another with Meltano, tap-sfbulk and target-sfbulk.
#
# From a fresh clone (Python 3.11 and nothing else) this one command
#   1. creates .venv with the project (and uv, which installs everything below quickly),
#   2. creates .venv-meltano with Meltano and installs the two plugins (custom plugins from
#      PyPI packages only: Meltano Hub is never asked),
#   3. starts two emulated orgs on free loopback ports, a seeded source and an empty destination,
#      runs `meltano run tap-sfbulk target-sfbulk` (environment `demo`), checks that every record
#      and every reference arrived, prints the figures and stops both orgs.
#
# Usage: scripts/demo.sh [--records N] [--import-sfdx DIR [--plan FILE]] [--setup-only]
# Every argument but --setup-only goes to scripts/demo.py; `scripts/demo.sh --help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
export PIP_DISABLE_PIP_VERSION_CHECK=1

setup_only=0
for arg in "$@"; do
  [ "$arg" = "--setup-only" ] && setup_only=1
done

step() { printf '==> %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  step "installing uv into .venv"
  .venv/bin/python -m pip install --quiet 'uv>=0.5'
fi
UV=.venv/bin/uv
step "installing the project into .venv"
"$UV" pip install --quiet --python .venv/bin/python -e .

if [ ! -x .venv-meltano/bin/python ]; then
  step "creating .venv-meltano"
  "$UV" venv --quiet --python "$PY" .venv-meltano
fi
# uv beside Meltano: Meltano finds it there and builds every plugin's virtualenv with it.
step "installing Meltano into .venv-meltano"
"$UV" pip install --quiet --python .venv-meltano/bin/python 'meltano>=4.4,<5' 'uv>=0.5'

export MELTANO_VENV_BACKEND=uv
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
export MELTANO_DISABLE_TRACKING=true
step "meltano install tap-sfbulk target-sfbulk"
.venv-meltano/bin/meltano --log-level=warning install tap-sfbulk target-sfbulk

if [ "$setup_only" = 1 ]; then
  step "set up; run scripts/demo.sh to copy an org"
  exit 0
fi
exec .venv/bin/python scripts/demo.py --meltano .venv-meltano/bin/meltano "$@"
