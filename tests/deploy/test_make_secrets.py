"""deploy/tools/make-secrets.sh, the Job that creates the app's Secrets at deploy time, run for real
(bash, curl, openssl) against a stand-in for the Kubernetes API on loopback (tests/support/
kube_api.py: TLS with its own CA, a ServiceAccount directory like the one Kubernetes mounts,
Secrets kept the way the API server keeps them)."""

import re
import subprocess

import pytest

from tests.support import kube_api
from tests.support.kube_api import TOKEN
from tests.support.manifests import ROOT

SCRIPT = ROOT / "deploy" / "tools" / "make-secrets.sh"


@pytest.fixture
def cluster(tmp_path):
    """Starts stand-in APIs on 127.0.0.1 and runs the script against one with the ServiceAccount files."""
    account = tmp_path / "serviceaccount"
    key = kube_api.make_serviceaccount(account)
    servers = []

    def start(**options):
        servers.append(kube_api.start(account, key, **options))
        return servers[-1]

    def run(api, *secrets):
        environment = {"PATH": "/usr/bin:/bin", "KUBERNETES_API_URL": f"https://127.0.0.1:{api.server_port}",
                       "SERVICEACCOUNT_DIR": str(account)}
        return subprocess.run(["bash", str(SCRIPT), *secrets], capture_output=True, text=True, env=environment,
                              timeout=120)

    yield start, run
    for api in servers:
        kube_api.stop(api)


values = kube_api.secret_values


ALL = ["mongodb-root", "mongodb-app", "app-secret", "mongodb-keyfile", "hello-tls", "grafana-admin"]


def test_every_secret_is_created_with_fresh_random_values_that_never_reach_the_output(cluster, tmp_path):
    start, run = cluster
    first, second = start(), start()
    for api in (first, second):
        result = run(api, *ALL)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{len(ALL)} created, 0 already there" in result.stdout
        assert set(api.secrets) == set(ALL)

    root, app = values(first.secrets["mongodb-root"]), values(first.secrets["mongodb-app"])
    assert root["username"] == "root" and app["username"] == "world-service"
    grafana = values(first.secrets["grafana-admin"])
    assert grafana["admin-user"] == "admin"
    for password in (root["password"], app["password"], values(first.secrets["app-secret"])["api-token"],
                     grafana["admin-password"]):
        assert re.fullmatch(r"[0-9a-f]{64}", password), "256 random bits, URL-safe for a connection string"
    keyfile = values(first.secrets["mongodb-keyfile"])["keyfile"]
    assert re.fullmatch(r"[A-Za-z0-9+/=]{6,1024}", keyfile), "MongoDB takes 6 to 1024 base64 characters"
    for name in ALL:
        assert values(first.secrets[name]) != values(second.secrets[name]), f"{name} is not random"
        assert first.secrets[name]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hello-secrets-job"

    tls = first.secrets["hello-tls"]
    assert tls["type"] == "kubernetes.io/tls"
    (tmp_path / "tls.crt").write_text(values(tls)["tls.crt"])
    certificate = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "tls.crt"), "-noout", "-text"],
                                 capture_output=True, text=True, check=True).stdout
    assert "DNS:hello.local" in certificate
    assert "PRIVATE KEY" in values(tls)["tls.key"]

    output = result.stdout + result.stderr
    for secret in second.secrets.values():
        for key, value in values(secret).items():
            if key not in ("username", "admin-user", "tls.crt"):  # not secret
                assert value[:16] not in output, f"{key} reached the output"
    assert TOKEN not in output


def test_a_second_run_keeps_every_existing_secret_as_it_is(cluster):
    start, run = cluster
    api = start()
    assert run(api, "mongodb-root", "app-secret").returncode == 0
    before = {name: values(secret) for name, secret in api.secrets.items()}
    again = run(api, "mongodb-root", "mongodb-app", "app-secret")
    assert again.returncode == 0, again.stderr
    assert "1 created, 2 already there" in again.stdout
    assert "Secret mongodb-root: already there, kept as it is" in again.stdout
    assert {name: values(api.secrets[name]) for name in before} == before


def test_without_the_right_to_create_it_names_the_role_and_fails(cluster):
    start, run = cluster
    result = run(start(allow_create=False), "app-secret")
    assert result.returncode != 0
    assert "Role hello-secrets" in result.stderr


def test_an_unknown_secret_fails_before_anything_is_created(cluster):
    start, run = cluster
    api = start()
    result = run(api, "app-secret", "no-such-secret")
    assert result.returncode != 0
    assert "unknown Secret 'no-such-secret'" in result.stderr
    assert set(api.secrets) == {"app-secret"}, "the ones named before it are made, the unknown one never"


def test_without_a_serviceaccount_token_it_says_what_the_job_needs(cluster, tmp_path):
    _, run = cluster
    result = subprocess.run(["bash", str(SCRIPT), "app-secret"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "KUBERNETES_API_URL": "https://127.0.0.1:1",
                                 "SERVICEACCOUNT_DIR": str(tmp_path / "missing")})
    assert result.returncode != 0
    assert "automountServiceAccountToken" in result.stderr
