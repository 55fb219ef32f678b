#!/usr/bin/env bash
# Fuzzes name parsing and request parsing (crates/hello-common/fuzz) for a bounded time each.
#   scripts/fuzz.sh [SECONDS per target, default 30]
# Needs the nightly toolchain (installed with rustup if missing) and cargo-fuzz (installed if
# missing). A crash is copied into fuzz/regressions/<target>/, which `cargo test` replays for
# ever after: commit it with the fix.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-30}"
fuzz_dir="$root/crates/hello-common/fuzz"
# Build output goes under the workspace's target/, beside every other build, never into crates/
# (which the images' build context copies).
target_dir="$root/target/fuzz"
say() { printf '%s\n' "$*"; }
fail() { printf 'fuzz: FAILED: %s\n' "$*" >&2; exit 1; }

if ! rustup toolchain list | grep -q '^nightly'; then
  say "Installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal || fail "rustup could not install nightly"
fi
if ! command -v cargo-fuzz >/dev/null; then
  say "Installing cargo-fuzz (about 2 minutes, once)"
  cargo install cargo-fuzz --locked --quiet || fail "cargo install cargo-fuzz failed"
fi

cd "$fuzz_dir"
say "Building the fuzz targets (nightly, AddressSanitizer)"
cargo +nightly fuzz build --target-dir "$target_dir" 2>&1 | tail -2
for target in name request; do
  say "Fuzzing $target for ${seconds}s (seeds: fuzz/regressions/$target)"
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  if ! cargo +nightly fuzz run --target-dir "$target_dir" "$target" "corpus/$target" "regressions/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=1024 >"$log" 2>&1; then
    tail -30 "$log" >&2
    for crash in artifacts/"$target"/*; do
      [ -e "$crash" ] || continue
      cp "$crash" "regressions/$target/" && say "kept $(basename "$crash") in fuzz/regressions/$target/"
    done
    rm -f "$log"
    fail "$target found an input that breaks a property (kept as a regression test; see above)"
  fi
  grep -E '^Done [0-9]+ runs' "$log" | sed "s/^/  $target: /"
  rm -f "$log"
done
say "fuzz: name and request parsing held for ${seconds}s each"
