#!/usr/bin/env bash
# Real-hardware check of the node agent, READ-ONLY: runs `powertrain agent --backend nvml --dry-run-power --no-kube`
# on this machine's GPU 0 for ~60 s under a workload (torch bf16 matmul, then a device copy, if torch is there),
# samples nvidia-smi alongside, scrapes the agent's /metrics and compares. It never sets a power limit, clock or
# mode: the agent gets no power requests (--no-kube) and could not act on one (--dry-run-power).
#
# Usage: bench/h200_check.sh [OUTDIR]   (default $OUT, else a temp dir). Needs python3 with nvidia-ml-py and
# prometheus-client; missing wheels can be put in .whl/ (installed to a private --target, never system-wide).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${1:-${OUT:-$(mktemp -d)}}
mkdir -p "$OUTDIR"
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import pydantic, cel, prometheus_client, pynvml" 2>/dev/null && ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/powertrain-site \
    "$ROOT"/.whl/*.whl || exit 1
  export PYTHONPATH="/tmp/powertrain-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$ROOT/operator:$ROOT/agents:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1
exec "$PYTHON" "$ROOT/bench/h200_check.py" --out "$OUTDIR" "${@:2}"
