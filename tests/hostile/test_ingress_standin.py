"""Real client addresses behind an Ingress, on loopback: a second, real nginx stands in for the
Ingress controller. Like ingress-nginx it appends the client to X-Forwarded-For and connects to the
pod from its own address (the trusted proxy, via proxy_bind), which pod-2's nginx trusts, as the
Ingress component's trusted-proxies.conf trusts the controller's range. Through it, each client
keeps its own rate limit, and a client cannot pick its address by forging the header."""

import http.client
import tempfile
from pathlib import Path

import pytest

from tests.support import nginx
from tests.support.ports import is_listening
from tests.support.processes import Process, wait_until

INGRESS_ADDRESS = "127.0.3.250"


def ingress_conf(upstream: str, proxy: str) -> str:
    return nginx.proxy_conf_head("A stand-in for an Ingress controller (tests/hostile/test_ingress_standin.py).", 256) + f"""\
    server {{
        listen {INGRESS_ADDRESS}:8080;
        location / {{
            proxy_pass http://{upstream};
            proxy_bind {proxy};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def ingress(rate_limited_pod, trusted_proxy):
    pod, _ = rate_limited_pod
    with tempfile.TemporaryDirectory(prefix="ingress-standin-") as work:
        work = Path(work)
        work.chmod(0o755)
        (work / "tmp").mkdir()
        (work / "tmp").chmod(0o777)
        (work / "nginx.conf").write_text(ingress_conf(f"{pod.address}:{pod.nginx_port}", trusted_proxy))
        process = Process("ingress-standin", nginx.command(work), {}, work).start()
        try:
            wait_until(lambda: is_listening(INGRESS_ADDRESS, 8080) or not process.running, 15,
                       "the ingress stand-in to listen")
            assert process.running, f"the ingress stand-in did not start: {process.log_path.read_text()}"
            yield INGRESS_ADDRESS
        finally:
            process.stop()


def through(ingress: str, source: str, forged: str | None = None) -> int:
    """The status of one GET through the ingress from `source` (a client's own address)."""
    connection = http.client.HTTPConnection(ingress, 8080, timeout=20, source_address=(source, 0))
    try:
        headers = {"X-Forwarded-For": forged} if forged else {}
        connection.request("GET", "/hello/behind-the-ingress", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def until_limited(send, attempts: int = 20) -> list[int]:
    statuses = []
    for _ in range(attempts):
        statuses.append(send())
        if statuses[-1] == 429:
            break
    return statuses


def test_each_client_behind_the_ingress_keeps_its_own_rate_limit(ingress, rate_limited_pod):
    _, burst = rate_limited_pod
    for client in range(1, 4):
        statuses = [through(ingress, f"127.0.3.{client}") for _ in range(burst)]
        assert statuses == [200] * burst, f"client {client} shares a limit with the others: {statuses}"
    limited = until_limited(lambda: through(ingress, "127.0.3.1"))
    assert limited[-1] == 429, f"client 1 never reached its own limit: {limited}"
    assert through(ingress, "127.0.3.4") == 200, "a new client behind the ingress was limited for another's requests"


def test_a_forged_forwarded_for_through_the_ingress_does_not_change_the_client(ingress, rate_limited_pod):
    """The ingress appends the real client; pod-2 takes the last address that is not a trusted
    proxy, so a header the client made up is ignored."""
    _, burst = rate_limited_pod
    forged = iter(f"198.51.100.{n}" for n in range(1, 100))
    statuses = until_limited(lambda: through(ingress, "127.0.3.20", forged=next(forged)))
    assert statuses[-1] == 429 and len(statuses) > burst, f"forged addresses dodged the limit: {statuses}"
