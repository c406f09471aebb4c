#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/sra/run.sh BUILD_DIR - SRA benchmarks on the embedded array; prints a markdown table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/bench_sra.py" --build "${1:?usage: bench/sra/run.sh BUILD_DIR}" "${@:2}"
