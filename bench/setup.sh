#!/usr/bin/env bash
# Tools the benchmarks compare against; idempotent, skips whatever is already there.
#   nginx-light + wrk (Debian packages) and Locust (PyPI, in var/bench-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench/setup.sh: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

BENCH_VENV=var/bench-venv
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
stamp="$BENCH_VENV/.installed"
if [ ! -f "$stamp" ] || [ requirements-bench.txt -nt "$stamp" ]; then
    echo "bench/setup.sh: installing requirements-bench.txt into $BENCH_VENV"
    [ -x "$BENCH_VENV/bin/python" ] || "$PYTHON" -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/python" -m pip install --quiet --upgrade pip
    "$BENCH_VENV/bin/python" -m pip install --quiet -r requirements-bench.txt
    touch "$stamp"
fi
