#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Grafana admin password of the Compose stack (compose.observability.yaml): a random one, or the one given.
#
#   bash services/grafana/make-admin-password.sh            # random; printed once
#   bash services/grafana/make-admin-password.sh --stdin    # read it from standard input
#
# Writes secrets/grafana_admin_password (secrets/ is git-ignored). Grafana reads it at its first start (it is the
# password of the user admin) through GF_SECURITY_ADMIN_PASSWORD__FILE; later changes go through Grafana itself
# (`docker compose exec grafana grafana cli admin reset-admin-password ...`) or a new grafana-data volume.
#
# Variables: SECRETS_DIR (default: secrets/ of this repository).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${SECRETS_DIR:-$repo_root/secrets}"
file="$dir/grafana_admin_password"

case "${1:-}" in
  --stdin) IFS= read -r password ;;
  "") password="$(openssl rand -base64 18 | tr -d '/+=')" ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
    ;;
esac
if [ -z "$password" ]; then
  echo "empty password" >&2
  exit 1
fi

# The folder is private to you; the file must be readable by Grafana's user in its container (uid 472), as Compose
# mounts secret files with their own mode.
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
printf '%s' "$password" > "$file.new"
chmod 644 "$file.new"
mv -f "$file.new" "$file"
if [ -z "${1:-}" ]; then
  echo "Grafana admin password (user admin): $password"
fi
echo "wrote $file"
