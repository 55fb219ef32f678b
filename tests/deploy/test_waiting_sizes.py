"""Every layer in front of a waiting read lets it wait, and holds as many as a pod may have.

A read may wait 20 s (`wait`, the contract's bound) and hello-service may then take its own
`HELLO_WORLD_TIMEOUT_MS` for world-service: the pod's nginx must wait longer than both for the
answer, and the Ingress and the Gateway route longer than the pod's nginx. Each waiting reader
holds two connections in nginx (the client's, the one to hello-service): nginx's workers, its
open-files limit and the podman test pods' `nofile` hold two per `HELLO_WAIT_PER_POD`; a client
may have more connections (`limit_conn`) than waiting reads (`HELLO_WAIT_PER_CLIENT`). The
defaults are read from the Rust code and must equal docs/configuration.md's.
"""

import re

import yaml

from tests.support.manifests import ROOT

NGINX_CONF = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()


def rust_default(function: str, service: str = "hello-service", file: str = "config.rs") -> int:
    """The value a `fn default_<x>() -> u..`/`usize` in a service's config returns."""
    config = (ROOT / "crates" / service / "src" / file).read_text()
    found = re.search(rf"fn {function}\(\) -> (?:u\d+|usize) {{\s*([\d_]+)\s*}}", config)
    assert found, f"{function} not found in {service}'s {file}"
    return int(found.group(1).replace("_", ""))


def max_wait_secs() -> int:
    """The contract's longest wait, as hello-common declares it."""
    wire = (ROOT / "crates" / "hello-common" / "src" / "wire" / "mod.rs").read_text()
    return int(re.search(r"pub const MAX_WAIT_SECS: u64 = (\d+);", wire).group(1))


def documented_default(variable: str) -> int:
    table = (ROOT / "docs" / "configuration.md").read_text()
    found = re.search(rf"^\| `{variable}` \| `([\d,]+)` \|", table, re.MULTILINE)
    assert found, f"{variable} has no row in docs/configuration.md"
    return int(found.group(1).replace(",", ""))


def nginx_number(directive: str) -> int:
    values = re.findall(rf"^\s*{directive} (\d+)s?;", NGINX_CONF, re.MULTILINE)
    assert len(values) == 1, f"one {directive} in nginx.conf, found {values}"
    return int(values[0])


def test_the_documented_defaults_are_the_codes():
    for variable, function in [("HELLO_WAIT_PER_CLIENT", "default_wait_per_client"),
                               ("HELLO_WAIT_PER_POD", "default_wait_per_pod"),
                               ("HELLO_WORLD_TIMEOUT_MS", "default_world_timeout_ms")]:
        assert documented_default(variable) == rust_default(function), variable


def test_every_proxy_waits_longer_than_the_longest_wait():
    longest = max_wait_secs() + rust_default("default_world_timeout_ms") / 1000
    pod_nginx = nginx_number("proxy_read_timeout")
    assert pod_nginx > longest, f"nginx's proxy_read_timeout {pod_nginx}s <= {longest}s"
    ingress = yaml.safe_load((ROOT / "deploy" / "components" / "ingress" / "ingress.yaml").read_text())
    annotations = ingress["metadata"]["annotations"]
    for annotation in ["proxy-read-timeout", "proxy-send-timeout"]:
        value = int(annotations[f"nginx.ingress.kubernetes.io/{annotation}"])
        assert value > pod_nginx, f"the Ingress's {annotation} {value}s <= the pod nginx's {pod_nginx}s"
    route = yaml.safe_load((ROOT / "deploy" / "components" / "gateway" / "httproute.yaml").read_text())
    for rule in route["spec"]["rules"]:
        for timeout in ["request", "backendRequest"]:
            seconds = int(rule["timeouts"][timeout].removesuffix("s"))
            assert seconds > pod_nginx, f"the HTTPRoute's {timeout} {seconds}s <= {pod_nginx}s"


def test_nginx_holds_two_connections_per_waiting_reader():
    per_pod = rust_default("default_wait_per_pod")
    workers = nginx_number("worker_processes")
    connections = nginx_number("worker_connections")
    # nginx spreads connections over its workers unevenly: each alone must not be the bound.
    assert workers * connections >= 2 * per_pod + 1000, (workers, connections, per_pod)
    assert nginx_number("worker_rlimit_nofile") >= connections
    limit_conn = int(re.search(r"limit_conn requests_per_client (\d+);", NGINX_CONF).group(1))
    assert limit_conn > rust_default("default_wait_per_client"), "a client at its waiting limit can still call"


def test_the_podman_test_pods_open_enough_files():
    conf = (ROOT / "deploy" / "podman" / "containers.conf").read_text()
    soft, hard = map(int, re.search(r'"nofile=(\d+):(\d+)"', conf).groups())
    assert min(soft, hard) >= 2 * rust_default("default_wait_per_pod")


def test_world_watches_at_least_twice_what_a_pod_may_wait_on():
    """A restarted hello-service's old session is kept beside the new one until it is forgotten."""
    watch_cap = rust_default("default_watch_cap", "world-service", "config/mod.rs")
    assert watch_cap >= 2 * rust_default("default_wait_per_pod"), watch_cap
