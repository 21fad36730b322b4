#!/usr/bin/env bash
# The one command to give the GPU machine (README "On a GPU"), from the repository root, carrying .whl and .maskops/models:
#   bash bench/gpu.sh [sections]      default: paths,training,crop,fullsize-data; then: fullsize-train; then: study
# Installs the carried wheels (bench/gpu_wheels.sh made them), runs bench/gpu_check.py under a time limit and leaves
# bench/results-gpu.json (also copied to $OUT, where the device tool collects files).
set -uo pipefail
cd "$(dirname "$0")/.."
site="$(mktemp -d)"  # the wheels are installed apart from the image's own packages
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl || exit 1
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
timeout "${LIMIT:-560}" python3 bench/gpu_check.py --sections "${1:-paths,training,crop,fullsize-data}" --budget "${BUDGET:-400}" \
  --out bench/results-gpu.json
rc=$?
[ -n "${OUT:-}" ] && cp bench/results-gpu.json "$OUT/" 2>/dev/null
exit $rc
