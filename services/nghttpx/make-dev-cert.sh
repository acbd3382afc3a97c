#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A self-signed certificate for the TLS proxy of the Compose stack (development and tests only).
#
#   bash services/nghttpx/make-dev-cert.sh [--force] [NAME_OR_IP ...]
#
# Writes secrets/tls/server.crt and secrets/tls/server.key (secrets/ is git-ignored), valid for localhost,
# 127.0.0.1, ::1, tls-proxy and every NAME_OR_IP given (e.g. the host's DNS name, to reach it from other machines).
# Clients trust the certificate itself, e.g. with tritonclient:
#
#   grpcclient.InferenceServerClient("localhost:8443", ssl=True, root_certificates="secrets/tls/server.crt")
#
# For a real certificate put your own server.crt (the chain, leaf first) and server.key in secrets/tls/ instead.
#
# Variables: TLS_DIR (default: secrets/tls of this repository), TLS_DAYS (default: 365).
set -euo pipefail

force=0
names=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0
      ;;
    -*)
      echo "unknown option: $arg" >&2
      exit 2
      ;;
    *) names+=("$arg") ;;
  esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${TLS_DIR:-$repo_root/secrets/tls}"
days="${TLS_DAYS:-365}"
cert="$dir/server.crt"
key="$dir/server.key"

if [ "$force" -eq 0 ] && { [ -e "$cert" ] || [ -e "$key" ]; }; then
  echo "$cert or $key exists already; --force replaces them" >&2
  exit 1
fi

san="DNS:localhost,DNS:tls-proxy,IP:127.0.0.1,IP:::1"
for name in "${names[@]+"${names[@]}"}"; do
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
    san="$san,IP:$name"
  else
    san="$san,DNS:$name"
  fi
done

# The folder is private to you; inside it the key must be readable by the proxy's user in its container (uid 101),
# as Compose mounts secret files with their own mode: no other user of this machine can reach it through the folder.
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
tmp="$(mktemp -d "$dir/.new.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
  -days "$days" -subj "/CN=triton-dynamo development" \
  -addext "subjectAltName=$san" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,digitalSignature,keyCertSign" \
  -addext "extendedKeyUsage=serverAuth" \
  -keyout "$tmp/server.key" -out "$tmp/server.crt" 2>/dev/null

chmod 644 "$tmp/server.crt" "$tmp/server.key"
mv -f "$tmp/server.key" "$key"
mv -f "$tmp/server.crt" "$cert"
echo "wrote $cert and $key ($san; $days days)"
