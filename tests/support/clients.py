"""Requests to a pod as many separate clients would send them: each on a new connection, from its
own loopback source address (127.0.1.x), so that a per-client limit answers only where a test
means it to. Used by the suites that attack a pod (tests/hostile)."""

import http.client
import itertools
import json
import re
import threading
import urllib.parse

_SOURCES = (f"127.0.1.{n}" for n in itertools.cycle(range(1, 255)))
_SOURCE_LOCK = threading.Lock()

JSON = {"Content-Type": "application/json"}
ALICE = json.dumps({"from": "alice"}).encode()


def next_source() -> str:
    with _SOURCE_LOCK:
        return next(_SOURCES)


def send(pod, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         source: str | None = None, extra: list[tuple[str, str]] | None = None):
    """(status, headers, body text) of one request through the pod's nginx, on a new connection
    from `source`; `extra` adds headers that repeat a name already in `headers`."""
    connection = http.client.HTTPConnection(pod.address, pod.nginx_port, timeout=20,
                                            source_address=(source or next_source(), 0))
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in list((headers or {}).items()) + (extra or []):
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def quote_name(name: str) -> str:
    """A name as one percent-encoded path segment."""
    return urllib.parse.quote(name, safe="")


def raw_path(name: str) -> str:
    return "/hello/" + quote_name(name)


def assert_clear_4xx(status, headers, text, what, allow_429=False):
    """A client's mistake, said clearly: a 4xx problem+json with its status and a detail."""
    assert status is not None and 400 <= status < 500, f"{what}: {status} {text[:300]}"
    assert allow_429 or status != 429, f"{what}: rate-limited; the corpus must test the input"
    assert headers.get("Content-Type", "").startswith("application/problem+json"), f"{what}: {headers}"
    problem = json.loads(text)
    assert problem["status"] == status and problem["detail"], f"{what}: {problem}"


def hello_metrics(pod) -> str:
    """hello-service's /metrics (which carries world's), from its own port as Prometheus scrapes
    it: nginx does not serve /metrics to the public."""
    connection = http.client.HTTPConnection(pod.address, pod.hello_port, timeout=20)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        status, text = response.status, response.read().decode()
    finally:
        connection.close()
    assert status == 200, f"{pod.name} /metrics: {status}"
    return text


def hellos_stored(pod) -> float:
    """hello_hellos_sent_total on this pod (hello-service counts each stored hello)."""
    match = re.search(r"^hello_hellos_sent_total (\S+)$", hello_metrics(pod), re.M)
    assert match, "hello_hellos_sent_total missing from /metrics"
    return float(match.group(1))
