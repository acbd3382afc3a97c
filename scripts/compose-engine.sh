#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Compose stack on a local Docker engine: what tests/engine/ runs, and how to run it by hand.
#
#   bash scripts/compose-engine.sh            prepare, run tests/engine/, then stop what was started
#   bash scripts/compose-engine.sh prepare    start an engine when none answers, build the stand-in and project images
#   bash scripts/compose-engine.sh stop       stop the engine, only if `prepare` started it
#
# Nothing is pulled: there may be no registry. The Debian base image is made with debootstrap from the Debian
# archive; every image compose.yaml names that cannot be had here (etcd, NATS, Prometheus, the Python base)
# is replaced by a stand-in built from it (tests/engine/standins/, each Dockerfile says what differs) under the exact
# reference .env pins, so compose.yaml runs unchanged. An image already present under that reference and not built
# here (the real one) is used as it is. Builds reach PyPI and Debian through the host's network (`--network host`);
# an engine started here has no iptables rules and no IP forwarding, so containers reach nothing outside their own
# networks. Images are rebuilt only when their inputs change (the base by a hash of its inputs, the rest by
# Docker's layer cache).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR=${TRITON_DYNAMO_ENGINE_STATE_DIR:-/var/tmp/triton-dynamo-engine}
BASE_IMAGE=triton-dynamo-standin/debian:bookworm
DEBIAN_MIRROR=${TRITON_DYNAMO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
STANDIN_LABEL=org.triton-dynamo.standin
COMPOSE_FILES=(-f compose.yaml -f compose.cpu.yaml -f tests/engine/compose.engine.yaml)

log() { printf 'compose-engine: %s\n' "$*" >&2; }

compose() {
  if [ -x .venv/bin/docker-compose ]; then .venv/bin/docker-compose "$@"; else uv run --no-sync docker-compose "$@"; fi
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "needs ${missing[*]} (Debian packages) and cannot install them here: not root or no apt-get"
    return 1
  fi
  log "installing ${missing[*]}"
  # The packages' services must not start by themselves: this script starts the engine the way it needs.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

start_engine() {
  if docker info >/dev/null 2>&1; then
    log "using the engine that answers ($(docker info --format '{{.ServerVersion}}'))"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    log "no Docker engine answers and only root can start one"
    return 1
  fi
  mkdir -p "$STATE_DIR"
  log "starting dockerd (log: $STATE_DIR/dockerd.log)"
  dockerd --iptables=false --ip-forward=false --pidfile "$STATE_DIR/dockerd.pid" >"$STATE_DIR/dockerd.log" 2>&1 &
  echo $! > "$STATE_DIR/started-by-us"
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  log "dockerd did not answer within 60 s:"
  tail -20 "$STATE_DIR/dockerd.log" >&2
  return 1
}

stop_engine() {
  [ -f "$STATE_DIR/started-by-us" ] || return 0
  local pid
  pid=$(cat "$STATE_DIR/started-by-us")
  log "stopping the dockerd this script started (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  rm -f "$STATE_DIR/started-by-us"
}

base_inputs_hash() {
  { echo "bookworm minbase ca-certificates $DEBIAN_MIRROR"
    cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true
    cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
  } | sha256sum | cut -c1-16
}

build_base() {
  local want have root
  want=$(base_inputs_hash)
  have=$(docker image inspect --format "{{ index .Config.Labels \"org.triton-dynamo.inputs\" }}" "$BASE_IMAGE" 2>/dev/null || true)
  if [ "$have" = "$want" ]; then
    return 0
  fi
  log "building $BASE_IMAGE with debootstrap from $DEBIAN_MIRROR"
  root=$(mktemp -d)
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$DEBIAN_MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; return 1; }
  # The host's apt sources and extra certificate authorities (e.g. an egress proxy's), so that builds on this base
  # reach Debian and PyPI exactly as the host does.
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    rm -f "$root/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/"
  fi
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$root" update-ca-certificates >/dev/null 2>&1
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    -c "LABEL org.triton-dynamo.inputs=$want" \
    -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root" "$root.log"
}

env_value() {
  # The value .env gives a name, unless the environment overrides it (as Compose reads it).
  local name=$1
  if [ -n "${!name:-}" ]; then echo "${!name}"; return; fi
  sed -n "s/^$name=//p" .env | tail -1
}

build_standins() {
  local pair folder reference label
  for pair in python:PYTHON_IMAGE etcd:ETCD_IMAGE nats:NATS_IMAGE prometheus:PROMETHEUS_IMAGE; do
    folder=${pair%%:*}
    reference=$(env_value "${pair#*:}")
    label=$(docker image inspect --format "{{ index .Config.Labels \"$STANDIN_LABEL\" }}" "$reference" 2>/dev/null || echo absent)
    if [ "$label" != absent ] && [ -z "$label" ]; then
      log "$reference is present and not a stand-in: using it"
      continue
    fi
    log "stand-in $reference (tests/engine/standins/$folder)"
    docker build --quiet --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "$STANDIN_LABEL=$folder" \
      -t "$reference" "tests/engine/standins/$folder" >/dev/null 2>"$STATE_DIR/build-$folder.log" \
      || { tail -30 "$STATE_DIR/build-$folder.log" >&2; return 1; }
  done
}

tag_build_stages() {
  # The build stage of each multi-stage image, under a tag of its own. The classic builder leaves it untagged, so
  # the prune after the build would take it, and with it the cache of the next build. Built with the arguments
  # compose.yaml gives, so that Compose's build below finds these in its cache.
  local args=(--network host --build-arg "PYTHON_IMAGE=$(env_value PYTHON_IMAGE)"
    --build-arg "UV_VERSION=$(env_value UV_VERSION)")
  docker build "${args[@]}" --target build -f services/frontend/Dockerfile \
    -t "triton-dynamo/frontend:build-stage" .
  docker build "${args[@]}" --build-arg "TRITON_IMAGE=$(env_value TRITON_IMAGE)" --target cpu-build \
    -f services/worker/Dockerfile -t "triton-dynamo/worker-cpu:build-stage" .
}

prepare() {
  mkdir -p "$STATE_DIR"
  install_packages
  start_engine
  build_base
  build_standins
  [ -f secrets/tls/server.crt ] || bash services/nghttpx/make-dev-cert.sh >/dev/null
  log "building the project's images"
  tag_build_stages >"$STATE_DIR/build-stages.log" 2>&1 || { tail -40 "$STATE_DIR/build-stages.log" >&2; return 1; }
  compose "${COMPOSE_FILES[@]}" build frontend control worker tls-proxy >"$STATE_DIR/build-project.log" 2>&1 \
    || { tail -40 "$STATE_DIR/build-project.log" >&2; return 1; }
  # A rebuild leaves the previous build's images untagged: about 5 GB each time the sources change, run after run.
  # Remove those of the project's images and stand-ins (their labels say so), and nothing else of the engine's.
  docker image prune -f --filter label=org.triton-dynamo.image >/dev/null
  docker image prune -f --filter label=org.triton-dynamo.standin >/dev/null
}

case "${1:-all}" in
  prepare) prepare ;;
  stop) stop_engine ;;
  all)
    trap stop_engine EXIT
    prepare
    TRITON_DYNAMO_ENGINE_PREPARED=1 uv run pytest tests/engine -q -p no:cacheprovider
    ;;
  *) echo "usage: $0 [prepare|stop]" >&2; exit 2 ;;
esac
