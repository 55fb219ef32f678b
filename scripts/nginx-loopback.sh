#!/usr/bin/env bash
# Prints the pod's nginx.conf rewritten to run on this machine: it listens on LISTEN instead of
# every address of the pod (`listen 8080;`), and proxies to hello-service at HELLO instead of the
# pod's localhost (`server 127.0.0.1:8081;`). Nothing else changes. The one place that knows
# those two lines: scripts/run-local.sh and the Python test harness (tests/support/nginx.py)
# both use it.
#
#   scripts/nginx-loopback.sh LISTEN HELLO [CONF] > nginx.conf
#     LISTEN  address:port to listen on, e.g. 127.0.0.1:8080
#     HELLO   address:port of hello-service, e.g. 127.0.0.1:8081
#     CONF    the configuration to rewrite (default: deploy/nginx/nginx.conf of this checkout)
#
# Fails, printing nothing, unless each of the two lines is in CONF exactly once.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
listen=$1 hello=$2
conf=${3:-"$(dirname "$0")/../deploy/nginx/nginx.conf"}
address='^[0-9.]+:[0-9]+$'
[[ $listen =~ $address && $hello =~ $address ]] \
  || { echo "nginx-loopback.sh: LISTEN and HELLO must be address:port, got '$listen' '$hello'" >&2; exit 2; }

for line in '        listen 8080;' '        server 127.0.0.1:8081;'; do
  count=$(grep -cxF -- "$line" "$conf" || true)
  [ "$count" -eq 1 ] \
    || { echo "nginx-loopback.sh: expected '${line#"${line%%[! ]*}"}' once in $conf, found it $count times: update this script" >&2; exit 1; }
done
sed -e "s/^        listen 8080;\$/        listen $listen;/" \
    -e "s/^        server 127\.0\.0\.1:8081;\$/        server $hello;/" "$conf"
