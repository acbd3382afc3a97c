#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite on a fresh machine: installs what it needs (uv, the locked Python environment, and the
# Debian packages etcd-server, nats-server, prometheus, shellcheck, nghttp2-proxy, libb64-0d, which Triton's
# perf_analyzer links (scripts/perf-analyzer.sh), and gcc with libnghttp2-dev, which build grpc-router
# (scripts/build-router.sh), when they are absent), builds grpc-router, then lints and runs pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k worker`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v nghttpx >/dev/null 2>&1 || missing+=(nghttp2-proxy)
PATH="$PATH:/usr/sbin:/sbin" ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d' || missing+=(libb64-0d)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
printf '#include <nghttp2/nghttp2.h>\n' | cc -E -x c - >/dev/null 2>&1 || missing+=(libnghttp2-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]}" >&2
    # The packages' own services must not start: the tests start what they need on loopback ports.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  else
    echo "warning: ${missing[*]} missing and cannot be installed here (not root or no apt-get)" >&2
  fi
fi

# Dynamo's file store (the discovery of `triton-dynamo up` and of most tests) takes one inotify instance per watch:
# each worker several per model, the frontend more as models come and go. Debian's limit of 128 per user was reached
# with the session's stack and a module's stack up at once ("Too many open files" when a worker creates a client).
if [ -w /proc/sys/fs/inotify/max_user_instances ] && [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]; then
  echo 1024 > /proc/sys/fs/inotify/max_user_instances
fi

bash scripts/build-router.sh
uv sync --locked
uv run ruff check .
uv run ruff format --check .
uv run lint-imports
uv run pytest "$@"
