#!/usr/bin/env bash
# Runs the whole product on this machine: world-service with its embedded store (data kept in
# .data/world, so hellos survive a restart) and hello-service in front of it, on 127.0.0.1.
# Ctrl-C stops both gracefully.
#
# Settings: any HELLO_* / WORLD_* variable (see README) is passed through; HELLO_PORT picks the
# public port (default 8081).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
port=${HELLO_PORT:-8081}
world_port=${WORLD_PORT:-8082}

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again"
command -v curl >/dev/null || fail "curl is missing: install it (Debian: apt-get install -y curl)"
for p in "$port" "$world_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    fail "port $p on 127.0.0.1 is taken: stop what uses it, or set HELLO_PORT / WORLD_PORT"
  fi
done

say "Building hello-service and world-service (release; the first build takes a few minutes)"
cargo build --release --quiet --bin hello-service --bin world-service || fail "cargo build failed (above)"

mkdir -p "$root/.data/world"
pids=()
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

say "Starting world-service on 127.0.0.1:$world_port (embedded store in .data/world)"
WORLD_LISTEN="127.0.0.1:$world_port" WORLD_DATA_DIR="${WORLD_DATA_DIR:-$root/.data/world}" \
  "$root/target/release/world-service" &
pids+=($!)
say "Starting hello-service on 127.0.0.1:$port"
HELLO_LISTEN="127.0.0.1:$port" HELLO_WORLD_URL="http://127.0.0.1:$world_port" \
  "$root/target/release/hello-service" &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
    cat <<MSG

Scalable Hello World is running: http://127.0.0.1:$port
  curl -i -X POST http://127.0.0.1:$port/hello/bob -H 'Content-Type: application/json' -d '{"from":"alice"}'
  curl -i http://127.0.0.1:$port/hello/bob
  API description: http://127.0.0.1:$port/openapi.json
Press Ctrl-C to stop.

MSG
    wait -n "${pids[@]}" || true
    fail "a service exited unexpectedly (its log is above)"
  fi
  sleep 0.1
done
fail "hello-service did not become ready within 10 s (logs above)"
