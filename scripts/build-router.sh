#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds grpc-router (services/grpc-router: the one port of `triton-dynamo up`, routing each gRPC call by its method)
# into build/tools/grpc-router (or $TRITON_DYNAMO_TOOLS_DIR), unless the binary there is newer than its source.
# Needs a C compiler and libnghttp2's headers (Debian: apt-get install gcc libc6-dev libnghttp2-dev); scripts/test.sh
# installs them where it can.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${TRITON_DYNAMO_TOOLS_DIR:-$root/build/tools}"
source="$root/services/grpc-router/grpc_router.c"
binary="$tools/grpc-router"
if [ -x "$binary" ] && [ "$binary" -nt "$source" ]; then
  exit 0
fi
cc="${CC:-cc}"
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "grpc-router needs a C compiler: apt-get install gcc libc6-dev libnghttp2-dev" >&2
  exit 2
fi
if ! printf '#include <nghttp2/nghttp2.h>\n' | "$cc" -E -x c - >/dev/null 2>&1; then
  echo "grpc-router needs libnghttp2's headers: apt-get install libnghttp2-dev" >&2
  exit 2
fi
mkdir -p "$tools"
# Built beside its final place and renamed into it, so that a failed build never leaves half a binary.
staging="$(mktemp "$tools/.grpc-router.XXXXXX")"
trap 'rm -f "$staging"' EXIT
"$cc" -O2 -Wall -Wextra -Werror -o "$staging" "$source" -lnghttp2
chmod 755 "$staging"
mv "$staging" "$binary"
echo "built $binary" >&2
