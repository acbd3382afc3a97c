# SPDX-License-Identifier: Apache-2.0
# nginx.conf written for nginx >= 1.27.3 rewritten for nginx 1.22:
# - `http2 on;` in a server block (>= 1.25.1): 1.22 knows only `listen ... http2`, so in each server block that says
#   `http2 on;`, that line goes and every listen gets `http2`. Server blocks without it (the healthcheck's plain
#   HTTP/1.1 port) stay as they are.
# - `server NAME:PORT resolve;` in an upstream block (>= 1.27.3): `resolve` goes, so 1.22 looks the name up once, at
#   start, and keeps that address (the pinned image looks it up again every 10 s).
function flush(   i, line) {
  for (i = 1; i <= count; i++) {
    line = held[i]
    if (http2 && line ~ /^[[:space:]]*http2[[:space:]]+on;/) continue
    if (http2 && line ~ /^[[:space:]]*listen[[:space:]]/) sub(/;[[:space:]]*$/, " http2;", line)
    print line
  }
  count = 0; http2 = 0; inside = 0
}
{
  if ($0 ~ /^[[:space:]]*server[[:space:]]+[^{]*[[:space:]]resolve;/) sub(/[[:space:]]+resolve;/, ";")
  if (!inside && $0 ~ /^[[:space:]]*server[[:space:]]*\{/) { inside = 1; depth = 0; count = 0; http2 = 0 }
  if (!inside) { print; next }
  held[++count] = $0
  if ($0 ~ /^[[:space:]]*http2[[:space:]]+on;/) http2 = 1
  text = $0; sub(/#.*/, "", text)
  depth += gsub(/\{/, "", text) - gsub(/\}/, "", text)
  if (depth == 0) flush()
}
END { if (count) flush() }
