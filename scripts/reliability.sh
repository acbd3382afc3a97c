#!/usr/bin/env bash
# Measures the stack's reliability and writes docs/reliability.md from what the tests recorded.
#   bash scripts/reliability.sh           the short variants (as CI runs them)
#   bash scripts/reliability.sh --long    also the long ones: a ten-minute soak, 40 s etcd and NATS outages
set -euo pipefail
cd "$(dirname "$0")/.."
export TRITON_DYNAMO_FIGURES_DIR=build/reliability
rm -rf "$TRITON_DYNAMO_FIGURES_DIR"
uv run pytest tests/reliability tests/e2e/test_bad_input.py -q -p no:cacheprovider "$@"
uv run python scripts/reliability_report.py "$TRITON_DYNAMO_FIGURES_DIR" docs/reliability.md "$*"
