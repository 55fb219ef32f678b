"""scripts/upgrade-mongodb-credentials.sh against a stub kubectl that keeps Secrets in a directory
and records every call and what was piped into `kubectl exec`. No MongoDB can run here, so the
script it pipes into mongosh is checked by `node --check` and by what it says it does."""

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "upgrade-mongodb-credentials.sh"
OLD_PASSWORD = "change-me-in-production"  # credential-scan: allow (0.1.0's public password, to upgrade from)
ROOT_PASSWORD, APP_PASSWORD = "a1" * 32, "b2" * 32

KUBECTL = r"""#!/usr/bin/env bash
# Stub kubectl: Secrets are directories under $STATE/secrets/NAME/KEY holding base64 values.
printf '%s\n' "$*" >> "$STATE/calls"
args=("$@")
[ "${args[0]}" = -n ] && args=("${args[@]:2}")
case "${args[0]} ${args[1]}" in
  "get namespace") exit 0 ;;
  "get secret")
    dir="$STATE/secrets/${args[2]}"
    [ -d "$dir" ] || exit 1
    if [ "${args[3]:-}" = -o ]; then key=${args[4]#jsonpath=\{.data.}; key=${key%\}}; cat "$dir/$key" 2>/dev/null; fi
    exit 0 ;;
  "exec -i") cat > "$STATE/mongosh-input.js"; [ ! -e "$STATE/mongo-fails" ] ;;
  "rollout restart"|"rollout status") exit 0 ;;
  "delete secret") rm -rf "$STATE/secrets/${args[2]}" ;;
  *) echo "stub kubectl: unexpected $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def cluster(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    (state / "secrets").mkdir(parents=True)
    stub = bin_dir / "kubectl"
    stub.write_text(KUBECTL)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)

    def secret(name, **values):
        directory = state / "secrets" / name
        directory.mkdir()
        for key, value in values.items():
            (directory / key).write_text(base64.b64encode(value.encode()).decode())

    def run(*args):
        environment = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state)}
        result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environment,
                                timeout=60)
        calls = (state / "calls").read_text().splitlines() if (state / "calls").exists() else []
        return result, calls

    run.secret, run.state = secret, state
    return run


def deployed_before_0_3(cluster):
    cluster.secret("mongodb-credentials", username="hello", password=OLD_PASSWORD)
    cluster.secret("mongodb-root", username="root", password=ROOT_PASSWORD)
    cluster.secret("mongodb-app", username="world-service", password=APP_PASSWORD)


def test_it_creates_the_users_through_stdin_restarts_the_app_and_deletes_the_old_secret(cluster):
    deployed_before_0_3(cluster)
    result, calls = cluster()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Done:" in result.stdout
    for password in (OLD_PASSWORD, ROOT_PASSWORD, APP_PASSWORD):
        encoded = base64.b64encode(password.encode()).decode()
        assert not [call for call in calls if password in call or encoded in call], "a credential on a command line"
        assert password not in result.stdout + result.stderr
    assert "-n scalable-hello exec -i mongodb-0 -c mongodb -- mongosh --quiet --norc --nodb" in calls
    assert calls[-3:] == ["-n scalable-hello rollout restart deployment/hello",
                          "-n scalable-hello rollout status deployment/hello --timeout=300s",
                          "-n scalable-hello delete secret mongodb-credentials"]
    piped = (cluster.state / "mongosh-input.js").read_text()
    assert base64.b64encode(APP_PASSWORD.encode()).decode() in piped
    assert "createUser({ user: app.user" in piped and "dropUser(old.user)" in piped
    assert "role: 'readWrite', db: database" in piped and 'const database = "hello";' in piped
    # mongosh's globals (Mongo, print) aside, it must be JavaScript that parses.
    check = subprocess.run(["node", "--check", str(cluster.state / "mongosh-input.js")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_when_mongodb_refuses_nothing_is_restarted_or_deleted(cluster):
    deployed_before_0_3(cluster)
    (cluster.state / "mongo-fails").touch()
    result, calls = cluster()
    assert result.returncode != 0
    assert "Nothing was deleted" in result.stderr
    assert not [call for call in calls if "rollout" in call or "delete" in call]
    assert (cluster.state / "secrets" / "mongodb-credentials").exists()


def test_a_deployment_without_the_old_secret_has_nothing_to_upgrade(cluster):
    result, calls = cluster()
    assert result.returncode == 0
    assert "nothing to upgrade" in result.stdout
    assert not [call for call in calls if "exec" in call]


def test_bad_options_print_usage_and_fail(cluster):
    result, _ = cluster("--database", "bad name")
    assert result.returncode != 0 and "--database must be" in result.stderr
    result, _ = cluster("--frobnicate")
    assert result.returncode != 0 and "unknown option" in result.stderr
