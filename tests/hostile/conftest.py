"""Three real pods (nginx + hello + world) on one nx-27017: tests/support/cluster.py.

pod-0 (127.0.0.2:8080) runs the default per-client rate limits: the hostile corpus sends each
request from its own loopback source address, as separate clients would. pod-1 (127.0.0.3:8080)
has the limit lifted for schemathesis, which cannot vary its source address. pod-2
(127.0.0.4:8080) has a tiny limit (a burst of 3, then 1 request a second), so that the test of
the limit itself does not depend on how fast this machine sends requests; its nginx trusts one
proxy address (trusted_proxy) to name the client in X-Forwarded-For.
"""

import tempfile
from pathlib import Path

import pytest

from tests.support.clients import hellos_stored
from tests.support.cluster import Cluster
from tests.support.pod import this_checkout

# pod-2's per-client limit: after TINY_BURST requests, one more every 1/TINY_RATE seconds.
TINY_BURST = 3
TINY_RATE = 1
# The one peer pod-2's nginx trusts to name the client (as an Ingress controller would be).
TRUSTED_PROXY = "127.0.1.200"


@pytest.fixture(scope="session")
def cluster():
    with tempfile.TemporaryDirectory(prefix="hostile-") as work:
        cluster = Cluster(
            work=Path(work),
            release=this_checkout(),
            pod_count=3,
            pod_hello_env={
                1: {"HELLO_RATE_LIMIT_PER_SECOND": "100000", "HELLO_RATE_LIMIT_BURST": "100000"},
                2: {"HELLO_RATE_LIMIT_PER_SECOND": str(TINY_RATE), "HELLO_RATE_LIMIT_BURST": str(TINY_BURST)},
            },
            # pod-2 trusts one proxy address to say who the client is (X-Forwarded-For).
            pod_nginx_includes={2: {"trusted-proxies.conf": (
                f"set_real_ip_from {TRUSTED_PROXY};\nreal_ip_header X-Forwarded-For;\nreal_ip_recursive on;\n")}},
        )
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="session")
def rate_limited_pod(cluster):
    """pod-2 and the burst its per-client limit allows (then 1 request a second)."""
    return cluster.pods[2], TINY_BURST


@pytest.fixture(scope="session")
def trusted_proxy() -> str:
    """The address pod-2's nginx trusts to name the client in X-Forwarded-For."""
    return TRUSTED_PROXY


@pytest.fixture(scope="module")
def pod(cluster):
    """pod-0: the pod the hostile requests go to."""
    return cluster.pods[0]


@pytest.fixture(scope="module")
def nothing_stored(cluster):
    """Fails the module if any of its requests stored a hello on pod-0."""
    before = hellos_stored(cluster.pods[0])
    yield
    assert hellos_stored(cluster.pods[0]) == before, "a hostile request stored a hello"
