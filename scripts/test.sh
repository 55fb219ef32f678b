#!/usr/bin/env bash
# Runs the test suite on a fresh machine, installing what each stage needs first.
#
#   ./scripts/test.sh                 every stage, in order
#   ./scripts/test.sh rust browser    only these stages, in the order given
#   ./scripts/test.sh --list          the stages and what each checks
#
# It ends with a table of each stage, its result and its time, and exits non-zero if any stage
# failed. A failed stage does not stop the ones after it, so one run shows every failure.
#
# Advisories: the deny stage checks the live RustSec database. Where it cannot be fetched (no
# access to GitHub), set ADVISORY_DB_SNAPSHOT to a directory holding a copy of it (plain files
# of rustsec/advisory-db); the stage then checks against that copy and says so.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

STAGES=(lint deny rust fuzz browser hostile scale deploy monitoring containers)

describe() {
  case $1 in
    lint) echo "cargo fmt --check; cargo clippy --all-targets -D warnings; actionlint (with shellcheck) on .github/workflows" ;;
    deny) echo "cargo deny: bans, licences, sources; advisories against the RustSec database (it must be able to fail: a crate with a known advisory is checked too)" ;;
    rust) echo "every Rust test: both store backends (MongoDB on nx-27017), real processes on 127.0.0.1, upgrades from 0.1.0" ;;
    fuzz) echo "cargo-fuzz on name and request parsing, 30 s each (nightly)" ;;
    browser) echo "the pod (real Nginx, hello, world) in headless Chromium, and an axe-core scan of the page (tests/browser)" ;;
    hostile) echo "a corpus of hostile requests and schemathesis against real pods on nx-27017 (tests/hostile)" ;;
    scale) echo "3 pods behind a balancer on nx-27017: kill -9 of each part, readers that vanish, a rolling restart, a rolling update from 0.1.0 (built from its commit), the store down (tests/scale --quick)" ;;
    deploy) echo "kustomize overlays, kubernetes-validate --strict, checkov, Skaffold schema, hadolint, shellcheck, the minikube script against stubs (tests/deploy)" ;;
    monitoring) echo "Debian's Prometheus scrapes a real pod under a bounded load: every dashboard query returns data; promtool checks and unit-tests the alert rules and checks the config; one request's trace through both services to an OTLP receiver (tests/monitoring)" ;;
    containers) echo "the four images built with podman from the repo's Dockerfiles; the crates inside their binaries audited (cargo audit bin); their SBOMs checked against CycloneDX 1.5; the rendered Job and app pod run as written (tests/containers)" ;;
    *) return 1 ;;
  esac
}

say() { printf '\n==> %s\n' "$*"; }
problem() { printf '\nFAILED: %s\n' "$*" >&2; return 1; }

# ---- what stages need, each installed at most once per run -------------------------------------

venv="$root/.venv"
deploy_venv="$root/.venv-deploy"
declare -A ready=()
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

need_rust() {
  [ -n "${ready[rust]:-}" ] && return 0
  command -v cargo >/dev/null || problem "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again" || return 1
  cargo --version
  ready[rust]=1
}

need_python_tools() {
  [ -n "${ready[python]:-}" ] && return 0
  say "Installing the Python test tools (tests/requirements.txt: nx-27017, Playwright, pytest, schemathesis) into .venv"
  if [ ! -x "$venv/bin/python" ]; then
    command -v python3 >/dev/null || problem "python3 is missing: install it (Debian: apt-get install -y python3 python3-venv)" || return 1
    python3 -m venv "$venv" || problem "cannot create a Python venv: install python3-venv (Debian: apt-get install -y python3-venv)" || return 1
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt \
    || problem "pip could not install tests/requirements.txt" || return 1
  export PATH="$venv/bin:$PATH"
  echo "nx-27017 at $(command -v nx-27017)"
  ready[python]=1
}

# need_debian COMMAND:PACKAGE ...: installs the packages whose command is missing.
need_debian() {
  local missing=() pair command package
  for pair in "$@"; do
    command=${pair%%:*}; package=${pair#*:}
    if [[ $command == /* ]]; then [ -x "$command" ] || missing+=("$package")
    else command -v "$command" >/dev/null || missing+=("$package"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "Installing ${missing[*]} (Debian packages)"
  command -v apt-get >/dev/null || problem "${missing[*]} missing and no apt-get: install them with your package manager" || return 1
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "${ready[apt_updated]:-}" ]; then
    $sudo apt-get update -q >/dev/null || problem "apt-get update failed" || return 1
    ready[apt_updated]=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null \
    || problem "apt-get could not install ${missing[*]}" || return 1
}

need_deploy_venv() {
  [ -n "${ready[deploy_venv]:-}" ] && return 0
  say "Installing the deployment checkers (tests/deploy/requirements.txt: checkov, kubernetes-validate, hadolint, jsonschema, cyclonedx; actionlint by hash) into .venv-deploy"
  if [ ! -x "$deploy_venv/bin/python" ]; then
    python3 -m venv "$deploy_venv" || problem "cannot create a Python venv: install python3-venv" || return 1
  fi
  "$deploy_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt \
    || problem "pip could not install tests/deploy/requirements.txt" || return 1
  "$deploy_venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
      -r tests/deploy/actionlint-requirements.txt \
    || problem "pip could not install tests/deploy/actionlint-requirements.txt (a wheel whose hash is not listed?)" || return 1
  ready[deploy_venv]=1
}

need_deploy_tools() {
  [ -n "${ready[deploy]:-}" ] && return 0
  need_deploy_venv || return 1
  command -v kubectl >/dev/null || problem "kubectl is missing (it renders the kustomize overlays): install it (https://kubernetes.io/docs/tasks/tools/)" || return 1
  ready[deploy]=1
}

need_cargo_deny() {
  cargo deny --version >/dev/null 2>&1 && return 0
  say "Installing cargo-deny (a few minutes, once)"
  cargo install --locked --quiet cargo-deny || problem "cargo install cargo-deny failed" || return 1
}

# The RustSec advisory database, once per run, for cargo-deny (deny) and cargo-audit
# (containers): sets advisory_db (the database's folder), advisory_config (deny.toml pointing at
# it), advisory_description and advisory_newest.
need_advisory_db() {
  [ -n "${ready[advisories]:-}" ] && return 0
  need_cargo_deny || return 1
  local work="$scratch/advisories"
  rm -rf "$work" && mkdir -p "$work"
  advisory_config="$root/deny.toml"
  if [ -n "${ADVISORY_DB_SNAPSHOT:-}" ]; then
    # A copy of the database: checked as cargo-deny would check its own clone, without fetching.
    [ -d "$ADVISORY_DB_SNAPSHOT/crates" ] || problem "ADVISORY_DB_SNAPSHOT=$ADVISORY_DB_SNAPSHOT does not hold an advisory database (no crates/ folder in it)" || return 1
    advisory_db="$work/advisory-dbs/advisory-db-3157b0e258782691"
    mkdir -p "$advisory_db" && cp -R "$ADVISORY_DB_SNAPSHOT/." "$advisory_db/"
    (cd "$advisory_db" && git init -q && git add -A && git -c user.name=test.sh -c user.email=test.sh@localhost commit -qm snapshot) \
      || problem "cannot prepare the advisory snapshot" || return 1
    awk -v path="$work/advisory-dbs" '{print} /^\[advisories\]/{print "db-path = \"" path "\""}' deny.toml > "$work/deny.toml"
    advisory_config="$work/deny.toml"
    advisory_description="the snapshot in ADVISORY_DB_SNAPSHOT=$ADVISORY_DB_SNAPSHOT"
    [ -f "$ADVISORY_DB_SNAPSHOT/SNAPSHOT" ] && advisory_description="$advisory_description ($(head -1 "$ADVISORY_DB_SNAPSHOT/SNAPSHOT" | sed 's/,$//'))"
  else
    # The live database, fetched (or updated) into cargo's home by cargo-deny itself; the checks
    # use that copy rather than fetching it again.
    if ! cargo deny --log-level error check advisories >"$work/fetch.log" 2>&1 \
        && grep -q "failed to fetch" "$work/fetch.log"; then
      cat "$work/fetch.log"
      problem "the RustSec advisory database cannot be fetched from this machine (is GitHub reachable?). Point ADVISORY_DB_SNAPSHOT at a copy of it (plain files of github.com/rustsec/advisory-db) and run again" || return 1
    fi
    advisory_db=$(find "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs" -maxdepth 1 -mindepth 1 -type d -name 'advisory-db-*' 2>/dev/null | head -1)
    advisory_description="the live RustSec database, fetched into $advisory_db (last commit $(git -C "$advisory_db" log -1 --format=%cs 2>/dev/null || echo unknown))"
  fi
  advisory_newest=$(grep -rhoE '^date = "[0-9]{4}-[0-9]{2}-[0-9]{2}"' "$advisory_db/crates" 2>/dev/null | cut -d'"' -f2 | sort | tail -1)
  ready[advisories]=1
}

# cargo-auditable (the fixture binary the containers stage builds) and cargo-audit (reads the
# crate list inside binaries): installed once into cargo's home, like cargo-deny.
need_cargo_audit() {
  local tool installed
  installed=$(cargo install --list)
  for tool in cargo-auditable@0.7.7 cargo-audit@0.22.2; do
    grep -q "^${tool%@*} v${tool#*@}:" <<<"$installed" && continue
    say "Installing $tool (a few minutes, once)"
    cargo install --locked --quiet "$tool" || problem "cargo install $tool failed" || return 1
  done
}

need_binaries() {
  [ -n "${ready[binaries]:-}" ] && return 0
  say "Building both services (debug) for the tests that run them"
  cargo build --quiet --workspace --bins || problem "cargo build failed" || return 1
  ready[binaries]=1
}

# ---- the stages: each returns non-zero on failure and may set `detail` for the summary ----------

stage_lint() {
  need_rust && need_debian shellcheck:shellcheck && need_deploy_venv || return 1
  say "cargo fmt --all --check"
  cargo fmt --all --check || problem "formatting: run cargo fmt --all" || return 1
  say "cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --quiet --workspace --all-targets -- -D warnings || problem "clippy found problems (above)" || return 1

  # The GitHub Actions workflows: syntax, expressions, the inputs of the actions they use, and the
  # shell of every run: block (actionlint runs shellcheck on them when it is on the PATH).
  local workflows=(.github/workflows/*.yml)
  [ -e "${workflows[0]}" ] || problem "no workflow in .github/workflows" || return 1
  say "actionlint ${workflows[*]}"
  "$deploy_venv/bin/actionlint" -version | sed -n 1p
  "$deploy_venv/bin/actionlint" -shellcheck "$(command -v shellcheck)" "${workflows[@]}" \
    || problem "actionlint found problems in the workflows (above)" || return 1
  # It must be able to fail, shellcheck included: an unquoted variable in a run: block.
  # shellcheck disable=SC2016 # $HOME written as it is: the workflow's shell must quote it
  printf 'on: push\njobs:\n  check:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo $HOME\n' >"$scratch/unquoted.yml"
  if "$deploy_venv/bin/actionlint" -shellcheck "$(command -v shellcheck)" "$scratch/unquoted.yml" >"$scratch/unquoted.log" 2>&1 \
      || ! grep -q SC2086 "$scratch/unquoted.log"; then
    cat "$scratch/unquoted.log"
    problem "actionlint did not report shellcheck's SC2086 for an unquoted \$HOME in a run: block: the run: blocks are not checked" || return 1
  fi
  echo "actionlint ok: ${#workflows[@]} workflows, their run: blocks checked by $(shellcheck --version | sed -n 's/^version: /shellcheck /p') (and an unquoted \$HOME is refused, as it must be)"
  detail="${#workflows[@]} workflows linted"
}

stage_deny() {
  need_rust && need_cargo_deny || return 1
  cargo deny --version
  say "cargo deny check bans licenses sources"
  cargo deny --log-level error check bans licenses sources || problem "cargo deny (above)" || return 1

  say "cargo deny check advisories"
  need_advisory_db || return 1
  local config="$advisory_config" deny=(cargo deny --offline)
  echo "advisory database: $advisory_description; newest advisory dated ${advisory_newest:-unknown}"

  "${deny[@]}" --log-level error --config "$config" check advisories \
    || problem "cargo deny found advisories (above): update the crate, or ignore the advisory in deny.toml with a reason" || return 1
  echo "advisories ok: no advisory that deny.toml does not ignore"

  # The check must be able to fail: a crate whose lockfile pins time 0.1.43 (RUSTSEC-2020-0071).
  local vulnerable=tests/advisories/known-vulnerable/Cargo.toml work="$scratch/deny"
  mkdir -p "$work"
  cargo fetch --quiet --locked --manifest-path "$vulnerable" || problem "cannot fetch the crates of $vulnerable" || return 1
  if "${deny[@]}" --log-level error --config "$config" --manifest-path "$vulnerable" check advisories >"$work/vulnerable.log" 2>&1; then
    cat "$work/vulnerable.log"
    problem "the advisory check passed a crate with a known advisory ($vulnerable): it checks nothing" || return 1
  fi
  grep -q "RUSTSEC-2020-0071" "$work/vulnerable.log" \
    || { cat "$work/vulnerable.log"; problem "the advisory check failed on $vulnerable, but not for RUSTSEC-2020-0071 (above)"; } || return 1
  echo "advisories can fail: $vulnerable is refused for RUSTSEC-2020-0071, as it must be"
  detail="advisories up to ${advisory_newest:-?}"
}

stage_rust() {
  need_rust && need_python_tools || return 1
  say "cargo test --workspace (embedded and MongoDB backends, real processes on 127.0.0.1)"
  mkdir -p target
  local status
  cargo test --workspace --no-fail-fast -- --nocapture 2>&1 | tee target/test-output.log \
    | grep -E '^(test |running |     Running|test result:|\[(embedded|mongodb)|crash|bad input: [0-9]+ cases|failures:|---- |thread .* panicked)' || true
  status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || problem "cargo test (full output: target/test-output.log)" || return 1
  detail="$(grep -Eo 'test result: ok\. [0-9]+ passed' target/test-output.log | awk '{s+=$4} END {print s+0}') tests"
}

stage_fuzz() {
  need_rust || return 1
  say "Fuzzing name and request parsing for 30 s each (cargo-fuzz, nightly; crashes ever found are replayed by cargo test)"
  scripts/fuzz.sh 30 || problem "fuzzing (above)" || return 1
  detail="2 targets, 30 s each"
}

# run_pytest NAME DIR PYTHON [ARGS...]: runs pytest on DIR, keeps its output in target/NAME-test-output.log.
run_pytest() {
  local name=$1 dir=$2 python=$3; shift 3
  mkdir -p target
  "$python" -m pytest "$dir" -p no:cacheprovider --color=no "$@" | tee "target/$name-test-output.log"
  local status=${PIPESTATUS[0]}
  if [ "$status" -eq 0 ]; then
    detail="$(grep -Eo '[0-9]+ passed' "target/$name-test-output.log" | tail -1 | awk '{print $1}') tests"
  else
    detail=$(tail -1 "target/$name-test-output.log" | grep -Eo '[0-9]+ (failed|passed|errors?)' | paste -sd, - | sed 's/,/, /g')
  fi
  return "$status"
}

stage_browser() {
  need_rust && need_python_tools && need_debian nginx:nginx /usr/bin/chromium:chromium && need_binaries || return 1
  echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  say "Browser and Nginx tests: the real pod on 127.0.0.1:8080 in headless Chromium (tests/browser)"
  run_pytest browser tests/browser "$venv/bin/python" -v || problem "browser tests (screenshots of this run: target/screenshots)" || return 1
}

stage_hostile() {
  need_rust && need_python_tools && need_debian nginx:nginx && need_binaries || return 1
  say "Hostile input: nasty names, paths, bodies, headers and slow clients, and schemathesis with every check, against real pods on nx-27017 (tests/hostile)"
  run_pytest hostile tests/hostile "$venv/bin/python" -q || problem "hostile input tests (above)" || return 1
}

stage_scale() {
  need_rust && need_python_tools && need_debian nginx:nginx && need_binaries || return 1
  say "Scale and survive (quick): 3 pods behind a balancer on nx-27017; kill -9 of world, hello, nginx and the store, readers that vanish, a rolling restart, a rolling update from 0.1.0, the store down (tests/scale)"
  "$venv/bin/python" -m tests.scale.run --quick --bin-dir target/debug || problem "scale scenarios (table above; logs kept in the temp dir it names)" || return 1
  detail="10 scenarios, 0 overdue leases"
}

stage_deploy() {
  need_debian shellcheck:shellcheck node:nodejs curl:curl openssl:openssl busybox:busybox && need_deploy_tools || return 1
  say "Deployment checks: kustomize overlays, kubernetes-validate --strict, checkov, skaffold schema, hadolint, shellcheck, exact base images, the SBOM script (dash and busybox), the release overlay and workflows, the minikube script against stubs (tests/deploy)"
  run_pytest deploy tests/deploy "$deploy_venv/bin/python" -v || problem "deployment checks (above)" || return 1
}

stage_monitoring() {
  need_rust && need_debian prometheus:prometheus node:nodejs npm:npm && need_deploy_tools && need_binaries || return 1
  prometheus --version 2>&1 | head -1
  say "Monitoring: Prometheus scrapes a real pod under load; every dashboard query, the alert rules and their unit tests, the config (tests/monitoring)"
  run_pytest monitoring tests/monitoring "$deploy_venv/bin/python" -v -s || problem "monitoring checks (above)" || return 1
  local queries
  queries=$(grep -Eo 'dashboard queries checked: [0-9]+' target/monitoring-test-output.log | grep -Eo '[0-9]+$' || true)
  detail="$detail, ${queries:-?} dashboard queries"
}

stage_containers() {
  need_python_tools && need_debian podman:podman runc:runc debootstrap:debootstrap && need_deploy_tools || return 1
  say "Container tests: the four images built with podman from the repo's Dockerfiles; the crates inside their binaries audited (cargo audit bin) and their SBOMs validated; the rendered hello-secrets Job and app pod (minikube and public overlays) run as written, probes, smoke test and graceful stop included (tests/containers)"
  need_rust && need_advisory_db && need_cargo_audit || return 1
  ADVISORY_DB="$advisory_db" DEPLOY_PYTHON="$deploy_venv/bin/python" tests/containers/run.sh || problem "container tests (above)" || return 1
  detail="4 images, 2 rendered pods"
}

# ---- which stages, then run them and sum up ---------------------------------------------------

selected=()
for argument in "$@"; do
  case $argument in
    --list)
      for stage in "${STAGES[@]}"; do printf '%-11s %s\n' "$stage" "$(describe "$stage")"; done
      exit 0 ;;
    -h|--help)
      sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) printf 'unknown option %s: use --list or stage names\n' "$argument" >&2; exit 2 ;;
    *)
      describe "$argument" >/dev/null || { printf 'unknown stage "%s": the stages are %s\n' "$argument" "${STAGES[*]}" >&2; exit 2; }
      selected+=("$argument") ;;
  esac
done
[ ${#selected[@]} -gt 0 ] || selected=("${STAGES[@]}")

started=$(date +%s)
results=()
failed=0
tests_passed=0
for stage in "${selected[@]}"; do
  printf '\n======== stage %s: %s\n' "$stage" "$(describe "$stage")"
  detail=""
  stage_started=$(date +%s)
  if "stage_$stage"; then
    result=passed
    [[ $detail =~ ^([0-9]+)\ tests ]] && tests_passed=$((tests_passed + BASH_REMATCH[1]))
  else
    result=FAILED; failed=$((failed + 1))
  fi
  results+=("$(printf '%-11s %-7s %6ss  %s' "$stage" "$result" "$(( $(date +%s) - stage_started ))" "$detail")")
done

printf '\n%-11s %-7s %7s  %s\n' stage result time detail
printf '%s\n' "${results[@]}"
total=$(( $(date +%s) - started ))
if [ "$failed" -eq 0 ]; then
  printf '\nPassed: %d of %d stages, in %dm%02ds.\n' "${#selected[@]}" "${#selected[@]}" $((total / 60)) $((total % 60))
  printf 'tests: %d passed, 0 failed\n' "$tests_passed"
else
  printf '\nFAILED: %d of %d stages failed (above) in %dm%02ds.\n' "$failed" "${#selected[@]}" $((total / 60)) $((total % 60)) >&2
  exit 1
fi
