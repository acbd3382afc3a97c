#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Triton's perf_analyzer, as a Triton user runs it, against the stack: installed once into build/tools (or
# $TRITON_DYNAMO_TOOLS_DIR), then run with the arguments given, e.g.
#   bash scripts/perf-analyzer.sh -m identity_fp32 --shape INPUT0:16 -u 127.0.0.1:8001
# Point it at the stack's one port (where nghttpx runs): its server-side section comes from ModelStatistics, summed
# over every worker; the frontend's own port has no statistics, so that section is left out there.
#
# Which build: the perf_analyzer of tritonclient 2.51.0's wheel, the release of the Triton the workers run. The
# perf-analyzer package on PyPI needs glibc 2.38 (Debian 12 has 2.36); tritonclient's wheels carried the binary up to
# 2.60. It links libb64 (Debian: libb64-0d) and the CUDA runtime library, which loads without a GPU and is only used
# for CUDA shared memory (the stack refuses shared memory anyway): it comes from NVIDIA's nvidia-cuda-runtime-cu12
# wheel. Neither wheel's Python dependencies are needed for the binary, so neither is installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${TRITON_DYNAMO_TOOLS_DIR:-$root/build/tools}"
home="$tools/perf-analyzer-2.51.0"

# ldconfig lives in /sbin, which is not on a Debian user's PATH.
if ! PATH="$PATH:/usr/sbin:/sbin" ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d'; then
  echo "perf_analyzer needs libb64.so.0d: apt-get install libb64-0d" >&2
  exit 2
fi

if [ ! -x "$home/bin/perf_analyzer" ]; then
  # Built beside its final place and renamed into it, so that an interrupted install is never taken for a whole one.
  mkdir -p "$tools"
  staging="$(mktemp -d "$tools/.perf-analyzer.XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  uv venv --quiet "$staging"
  uv pip install --quiet --python "$staging/bin/python" --no-deps \
    "tritonclient==2.51.0" "nvidia-cuda-runtime-cu12==12.9.79"
  rm -rf "$home"
  mv -T "$staging" "$home"
  trap - EXIT
fi

cudart="$(echo "$home"/lib/python3*/site-packages/nvidia/cuda_runtime/lib)"
export LD_LIBRARY_PATH="$cudart${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$home/bin/perf_analyzer" "$@"
