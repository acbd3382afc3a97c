#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Measures the stack's reliability and writes docs/reliability.md from what the tests recorded.
#   bash scripts/reliability.sh           the short variants (as CI runs them)
#   bash scripts/reliability.sh --long    also the long ones: a ten-minute soak, 40 s etcd and NATS outages
# The Compose scenarios alone (on a Docker engine, tests/engine/), into their section of docs/reliability.md:
#   TRITON_DYNAMO_FIGURES_DIR=build/engine uv run pytest tests/engine
#   uv run python scripts/reliability_report.py build/engine docs/reliability.md --only engine
set -euo pipefail
cd "$(dirname "$0")/.."
export TRITON_DYNAMO_FIGURES_DIR=build/reliability
rm -rf "$TRITON_DYNAMO_FIGURES_DIR"
uv run pytest tests/reliability tests/e2e/test_bad_input.py tests/engine -q -p no:cacheprovider "$@"
uv run python scripts/reliability_report.py "$TRITON_DYNAMO_FIGURES_DIR" docs/reliability.md "$*"
