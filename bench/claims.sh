#!/usr/bin/env bash
# The claims benchmark (issue 5): sustained 3-line claim submissions for random people, beside
# /health/ready of the same run. Same harness and options as bench/eligibility.sh.
set -euo pipefail
BENCH_TARGET=claims exec "$(dirname "$0")/eligibility.sh" "$@"
