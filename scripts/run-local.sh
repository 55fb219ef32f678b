#!/usr/bin/env bash
# Runs the whole pod on this machine, every port on loopback (127.0.0.1) only:
#   nginx :8080 (the page, proxying the API)  ->  hello-service :8081  ->  world-service on the
#   Unix socket .data/world.sock (no TCP port: as in the pod, only hello-service's user opens it)
# world-service uses its embedded store in .data/world, so hellos survive a restart. Like the
# Kubernetes pod, the services read a "mounted ConfigMap" (.data/config: edit a file there and
# the page's info panel shows it without a restart), an "immutable ConfigMap"
# (.data/config-immutable) and a "Secret" (.data/secret: /info shows its key names, never a value).
#
# Nginx comes from the system's package manager when it is missing (apt-get, dnf or brew); if it
# cannot be installed, the API still runs on :8081 without the page.
# Ctrl-C stops everything gracefully. Any HELLO_* / WORLD_* variable is passed through.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
data="$root/.data"

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again"
command -v curl >/dev/null || fail "curl is missing: install it (Debian: apt-get install -y curl)"

install_nginx() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null; then
    say "Nginx is missing: installing it with apt-get (Debian's nginx package)"
    $sudo apt-get install -y -q nginx >/dev/null || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q nginx >/dev/null; }
  elif command -v dnf >/dev/null; then
    say "Nginx is missing: installing it with dnf"
    $sudo dnf install -y -q nginx >/dev/null
  elif command -v brew >/dev/null; then
    say "Nginx is missing: installing it with Homebrew"
    brew install nginx >/dev/null
  fi
}
if ! command -v nginx >/dev/null; then
  install_nginx || true
fi
with_nginx=true
if ! command -v nginx >/dev/null; then
  with_nginx=false
  say "Nginx could not be installed: running the API only (install nginx for the web page)"
fi

ports=(8081)
$with_nginx && ports=(8080 "${ports[@]}")
for port in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port on 127.0.0.1 is taken: stop what uses it (another run of this script?), then retry"
  fi
done

say "Building hello-service and world-service (release; the first build takes a few minutes)"
cargo build --release --quiet --bin hello-service --bin world-service || fail "cargo build failed (above)"

mkdir -p "$data/world" "$data/config" "$data/config-immutable" "$data/secret" "$data/nginx/tmp"
[ -e "$data/config/banner" ] || echo "Hello from the mounted ConfigMap: edit .data/config/banner" > "$data/config/banner"
[ -e "$data/config-immutable/release-channel" ] || echo "local" > "$data/config-immutable/release-channel"
[ -e "$data/secret/api-token" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$data/secret/api-token"
# Like a mounted Secret: readable by its owner only, whatever the umask.
chmod 700 "$data/secret" && chmod 600 "$data/secret/api-token"
ln -sfn "$root/frontend" "$data/nginx/html"
# The pod's nginx.conf listens on every address of the pod (0.0.0.0:8080); here it listens on
# loopback only (scripts/nginx-loopback.sh, which the test harness uses too). Its included files
# sit beside the copy, as they do beside the original.
for included in "$root"/deploy/nginx/*.conf; do
  [ "$(basename "$included")" = nginx.conf ] || ln -sfn "$included" "$data/nginx/$(basename "$included")"
done
"$root/scripts/nginx-loopback.sh" 127.0.0.1:8080 127.0.0.1:8081 > "$data/nginx/nginx.conf" \
  || fail "could not rewrite deploy/nginx/nginx.conf for loopback (above)"

pids=()
# shellcheck disable=SC2317  # called from the traps below
stop() {
  trap - INT TERM EXIT
  say "Stopping (SIGTERM, graceful)"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  say "Stopped. Unread hellos are kept in .data/world"
  exit "${1:-0}"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

# As in the images: two malloc arenas (less memory, same speed; docs/performance.md).
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
export POD_NAME="${POD_NAME:-local-$(hostname)}" POD_IP="${POD_IP:-127.0.0.1}" NODE_NAME="${NODE_NAME:-$(hostname)}"
for service in HELLO WORLD; do
  export "${service}_CONFIG_DIR=$data/config" "${service}_IMMUTABLE_CONFIG_DIR=$data/config-immutable" "${service}_SECRET_DIR=$data/secret"
done

# As in the pod: world listens on its Unix socket only (mode 0600), and hello reaches it there.
socket="$data/world.sock"
say "Starting world-service on the Unix socket $socket (embedded store in .data/world)"
WORLD_LISTEN_SOCKET="$socket" WORLD_DATA_DIR="${WORLD_DATA_DIR:-$data/world}" \
  "$root/target/release/world-service" &
pids+=($!)
say "Starting hello-service on 127.0.0.1:8081"
HELLO_LISTEN=127.0.0.1:8081 HELLO_WORLD_URL="unix:$socket" "$root/target/release/hello-service" &
pids+=($!)
url=http://127.0.0.1:8081
if $with_nginx; then
  say "Starting nginx on 127.0.0.1:8080 with deploy/nginx/nginx.conf (bound to loopback only)"
  nginx -p "$data/nginx/" -c "$data/nginx/nginx.conf" -e stderr -g 'daemon off;' &
  pids+=($!)
  url=http://127.0.0.1:8080
fi

for _ in $(seq 1 100); do
  if curl -fsS "$url/readyz" >/dev/null 2>&1; then
    cat <<MSG

Scalable Hello World is running. Open $url/
  curl -i -X POST $url/hello/bob -H 'Content-Type: application/json' -d '{"from":"alice"}'
  curl -i $url/hello/bob
  curl -s $url/info        curl -s http://127.0.0.1:8081/metrics        $url/openapi.json
Edit .data/config/banner and press Refresh on the page: the mounted value changes live.
Press Ctrl-C to stop.

MSG
    wait -n "${pids[@]}" || true
    fail "a process exited unexpectedly (its log is above)"
  fi
  sleep 0.1
done
fail "the pod did not become ready within 10 s (logs above)"
