#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/sm/run.sh BUILD_DIR - ReplunSR per-call latency against the Python floor; markdown table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/bench_sm.py" --build "${1:?usage: bench/sm/run.sh BUILD_DIR}" "${@:2}"
