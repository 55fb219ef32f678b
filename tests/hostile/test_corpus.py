"""A corpus of hostile requests against a real pod (nginx -> hello -> world -> nx-27017).

Every answer must be a clear 4xx problem+json, never a 5xx or a hang, and nothing may be stored.
Each request comes from its own loopback source address (127.0.1.x), as separate clients would,
so that the per-client rate limit does not answer in place of the check under test; the last
test is the rate limit itself, from one address.
"""

import http.client
import itertools
import json
import re
import socket
import threading
import time
import urllib.parse

import pytest

SOURCES = (f"127.0.1.{n}" for n in itertools.cycle(range(1, 255)))
SOURCE_LOCK = threading.Lock()


def next_source() -> str:
    with SOURCE_LOCK:
        return next(SOURCES)


def send(pod, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         source: str | None = None, extra: list[tuple[str, str]] | None = None):
    """(status, headers, body text) of one request on a new connection from `source`; `extra`
    adds headers that repeat a name already in `headers`."""
    connection = http.client.HTTPConnection(pod.address, 8080, timeout=20,
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


def raw_path(name: str) -> str:
    return "/hello/" + urllib.parse.quote(name, safe="")


JSON = {"Content-Type": "application/json"}
ALICE = json.dumps({"from": "alice"}).encode()

# Names, each sent as the recipient of a valid POST, and read with GET.
HOSTILE_NAMES = [
    "p\u0430ypal",  # Cyrillic а in a Latin name
    "b\u043eb",  # Cyrillic о
    "g\u03bfogle",  # Greek omicron
    "bob\u202egnp.exe",  # right-to-left override
    "\u202ebob",
    "\u200fbob",  # right-to-left mark
    "b\u200bob",  # zero-width space
    "bob\u2060",  # word joiner
    "\ufeffbob",  # byte-order mark
    "bob\x00",
    "\x00",
    "a\x07b",
    "a\nb",
    "a\rb",
    "a\tb",
    "a" * 65,
    "e\u0301" * 65,  # 65 characters after NFC
    "李" * 65,
    "..",
    ".",
    "../etc/passwd",
    "..\\..\\windows",
    "$gt",
    "$ne",
    "$where",
    '{"$ne": null}',
    "bob.$gt",
    "bob[$ne]",
    "<script>alert(1)</script>",
    "bob'--",
    'bob" OR 1=1',
    "-bob",
    "_bob",
    " bob",
    "bob ",
    "%2e%2e%2f",
    "\U0001f600",  # emoji: not a letter
]

# Raw path tricks, sent as they are.
HOSTILE_PATHS = [
    "/hello/..%2f..%2fetc%2fpasswd",
    "/hello/%2e%2e",
    "/hello/%2e%2e%2f%2e%2e%2finfo",
    "/hello/bob%2f..%2f..%2finfo",
    "/hello/%252e%252e%252f",
    "/hello/%C0%AF",  # overlong UTF-8 for '/'
    "/hello/%C0%AE%C0%AE",
    "/hello/%FF%FE",
    "/hello/%ED%A0%80",  # a UTF-16 surrogate in UTF-8
    "/hello/bob%00",
    "/hello/%00",
    "/hello/bob%0d%0aSet-Cookie:%20x=1",
    "/hello/%24gt",
    "/hello/%7B%22%24ne%22%3Anull%7D",
    "/hello/" + "a" * 5000,
    "/hello/bob?limit=0",
    "/hello/bob?limit=-1",
    "/hello/bob?limit=1001",
    "/hello/bob?limit=1e3",
    "/hello/bob?limit=abc",
    "/hello/bob?limit=%00",
    "/hello/bob?limit[$gt]=1",
    "/hello/bob?limit=1&limit=2",
    "/hello/bob?unknown=1",
    "/hello/bob?" + "x=1&" * 2000,
]

# Bodies for POST /hello/bob (all sent as application/json unless the case says otherwise).
DEEP_ARRAY = b'{"from": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
DEEP_OBJECT = b'{"from": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"
HOSTILE_BODIES = [
    b'{"from": {"$ne": null}}',
    b'{"from": {"$gt": ""}}',
    b'{"from": {"$regex": ".*"}}',
    b'{"from": "$ne"}',
    b'{"from": ["alice"]}',
    b'{"from": 1}',
    b'{"from": 1.5e300}',
    b'{"from": null}',
    b'{"from": true}',
    b'{"from": ""}',
    b"{}",
    b"[]",
    b'"alice"',
    b"null",
    b"1",
    b'{"from": "alice", "$where": "sleep(1000)"}',
    b'{"from": "alice", "to": "eve"}',
    b'{"$set": {"from": "alice"}}',
    b'{"from": "alice", "from": "$ne"}',
    b'{"from": "p\\u0430ypal"}',
    b'{"from": "\\u202ebob"}',
    b'{"from": "a\\u0000b"}',
    b'{"from": "\\ud800"}',  # a lone surrogate
    b"{",
    b'{"from": "alice"',
    b'{"from": "alice"}}',
    b'{"from": "\xff\xfe"}',  # not UTF-8
    b"\xef\xbb\xbf" + ALICE,  # byte-order mark
    b"\x00" * 10,
    DEEP_ARRAY[:15000],
    DEEP_OBJECT[:15000],
]


def assert_clear_4xx(status, headers, text, what, allow_429=False):
    assert status is not None and 400 <= status < 500, f"{what}: {status} {text[:300]}"
    assert allow_429 or status != 429, f"{what}: rate-limited; the corpus must test the input"
    assert headers.get("Content-Type", "").startswith("application/problem+json"), f"{what}: {headers}"
    problem = json.loads(text)
    assert problem["status"] == status and problem["detail"], f"{what}: {problem}"


def hellos_stored(pod) -> float:
    """hello_hellos_sent_total on this pod (hello-service counts each stored hello), from
    hello-service's own port: nginx does not serve /metrics to the public."""
    connection = http.client.HTTPConnection(pod.address, 8081, timeout=20)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        status, text = response.status, response.read().decode()
    finally:
        connection.close()
    assert status == 200
    match = re.search(r"^hello_hellos_sent_total (\S+)$", text, re.M)
    assert match, "hello_hellos_sent_total missing from /metrics"
    return float(match.group(1))


@pytest.fixture(scope="module")
def pod(cluster):
    return cluster.pods[0]


@pytest.fixture(scope="module", autouse=True)
def nothing_stored(pod):
    before = hellos_stored(pod)
    yield
    assert hellos_stored(pod) == before, "a hostile request stored a hello"


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: ascii(n)[:40])
def test_hostile_names_are_refused(pod, name):
    path = raw_path(name)
    assert_clear_4xx(*send(pod, "POST", path, ALICE, JSON), f"POST {name!r}")
    assert_clear_4xx(*send(pod, "GET", path), f"GET {name!r}")
    sender = json.dumps({"from": name}).encode()
    assert_clear_4xx(*send(pod, "POST", "/hello/bob", sender, JSON), f"from {name!r}")
    assert_clear_4xx(*send(pod, "POST", "/hello/bob?from=" + urllib.parse.quote(name, safe="")),
                     f"?from={name!r}")
    assert_clear_4xx(*send(pod, "POST", path + "/reads"), f"reads of {name!r}")
    assert_clear_4xx(*send(pod, "DELETE", path + "/reads/0190"), f"confirm for {name!r}")


@pytest.mark.parametrize("path", HOSTILE_PATHS, ids=lambda p: p[:50])
def test_hostile_paths_are_refused(pod, path):
    for method in ("GET", "POST"):
        body = ALICE if method == "POST" else None
        status, headers, text = send(pod, method, path, body, JSON if body else None)
        if status == 404:
            # Some tricks leave the API entirely; nginx's answer is then a 404 problem.
            assert headers.get("Content-Type", "").startswith("application/problem+json"), text
            continue
        assert_clear_4xx(status, headers, text, f"{method} {path[:60]}")


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=lambda b: ascii(b[:30]))
def test_hostile_bodies_are_refused(pod, body):
    assert_clear_4xx(*send(pod, "POST", "/hello/bob", body, JSON), f"body {body[:60]!r}")


@pytest.mark.parametrize("headers,body", [
    ({"Content-Type": "text/plain"}, ALICE),
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"from=alice"),
    ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x\r\n\r\nalice\r\n--x--"),
    ({}, ALICE),
    ({**JSON, "Idempotency-Key": ""}, ALICE),
    ({**JSON, "Idempotency-Key": "k" * 129}, ALICE),
    ({**JSON, "Idempotency-Key": "has space"}, ALICE),
    ({**JSON, "Idempotency-Key": "caf\xe9"}, ALICE),
    ({**JSON, "Idempotency-Key": '{"$ne": null}'}, b'{"from": {"$ne": null}}'),
], ids=lambda value: ascii(value)[:40])
def test_hostile_headers_are_refused(pod, headers, body):
    assert_clear_4xx(*send(pod, "POST", "/hello/bob", body, headers), f"headers {headers}")


# Reliable reads: queries and bodies of POST /hello/bob/reads (which takes none, or {}).
HOSTILE_READ_QUERIES = [
    "?limit=0", "?limit=1001", "?limit=-1", "?limit=abc", "?limit[$gt]=1",
    "?lease_ms=0", "?lease_ms=99", "?lease_ms=3600001", "?lease_ms=-100", "?lease_ms=1e5",
    "?lease_ms=99999999999999999999999", "?lease_ms=%00", "?lease_ms[$gt]=0", "?lease_ms=1000&lease_ms=2000",
    "?receipt=x",
]
HOSTILE_READ_BODIES = [b for b in HOSTILE_BODIES if b != b"{}"] + [b'{"lease_ms": 100}', b'{"": 1}']
# Receipts that cannot be ours, confirmed for bob (who holds a real one that must survive them).
HOSTILE_RECEIPTS = [
    "..", "..%2f..%2finfo", "%00", "a" * 65, "a" * 5000, "%24ne", "%7B%22%24ne%22%3Anull%7D",
    "0190%20OR%201=1", "%E2%80%AEabc", "00000000-0000-7000-8000-000000000000", "bob", "%C0%AF",
]


@pytest.mark.parametrize("query", HOSTILE_READ_QUERIES, ids=lambda q: q[:40])
def test_hostile_read_queries_are_refused(pod, query):
    assert_clear_4xx(*send(pod, "POST", "/hello/bob/reads" + query), f"reads{query}")


@pytest.mark.parametrize("body", HOSTILE_READ_BODIES, ids=lambda b: ascii(b[:30]))
def test_hostile_read_bodies_are_refused(pod, body):
    assert_clear_4xx(*send(pod, "POST", "/hello/bob/reads", body, JSON), f"read body {body[:60]!r}")


def test_hostile_receipts_are_refused_and_change_nothing(pod, cluster):
    # The one hello is sent through the other pod (both share the store), so that this pod's
    # count of stored hellos still shows that no hostile request stored one.
    assert send(cluster.pods[1], "POST", "/hello/rcpt", ALICE, JSON)[0] == 201
    status, _, text = send(pod, "POST", "/hello/rcpt/reads")
    assert status == 201, text
    receipt = json.loads(text)["receipt"]
    # Receipts that cannot be ours, and the real one for another name.
    for name, hostile in [("rcpt", hostile) for hostile in HOSTILE_RECEIPTS] + [("mallory", receipt)]:
        status, headers, text = send(pod, "DELETE", f"/hello/{name}/reads/{hostile}")
        assert_clear_4xx(status, headers, text, f"receipt {hostile[:40]!r} for {name}")
    # None of that confirmed or spoilt the real read.
    assert send(pod, "DELETE", f"/hello/rcpt/reads/{receipt}")[0] == 204


@pytest.mark.parametrize("method,path", [
    ("PUT", "/hello/bob"), ("DELETE", "/hello/bob"), ("PATCH", "/hello/bob"), ("TRACE", "/hello/bob"),
    ("GET", "/hello/bob/reads"), ("DELETE", "/hello/bob/reads"), ("PUT", "/hello/bob/reads/x"),
    ("GET", "/hello/bob/reads/x"),
    ("DELETE", "/info"), ("POST", "/openapi.json"), ("TRACE", "/"),
])
def test_wrong_methods_are_405_with_allow(pod, method, path):
    status, headers, text = send(pod, method, path, b"" if method != "TRACE" else None)
    assert_clear_4xx(status, headers, text, f"{method} {path}")
    assert status == 405 and headers.get("Allow"), f"{method} {path}: {status} {headers}"


def test_a_ten_megabyte_body_is_refused_early(pod):
    body = b'{"from": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    started = time.monotonic()
    try:
        status, headers, text = send(pod, "POST", "/hello/bob", body, JSON)
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("nginx must answer 413, not cut the connection, before the body is read")
    assert status == 413, f"{status} {text[:200]}"
    assert_clear_4xx(status, headers, text, "10 MB body")
    assert time.monotonic() - started < 10


def slow_request(pod, head: bytes, trickle: bytes, results: dict, key: str):
    """Sends `head` at once, then `trickle` one byte a second; records what came back and when."""
    started = time.monotonic()
    with socket.create_connection((pod.address, 8080), timeout=30, source_address=(next_source(), 0)) as sock:
        sock.sendall(head)
        answer = b""
        sock.settimeout(1.0)
        for byte in trickle:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                break
            except socket.timeout:
                continue
        sock.settimeout(15)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    results[key] = (answer.decode("utf-8", "replace"), time.monotonic() - started)


def test_slow_clients_are_cut_off_and_others_are_served_meanwhile(pod):
    """A body sent one byte a second, and headers sent one byte a second (slowloris):
    hello-service gives up on the body after 10 s in all (408 problem), nginx on the headers after
    its 10 s client_header_timeout; other clients are served meanwhile."""
    results: dict = {}
    body = json.dumps({"from": "slowpoke" + "a" * 30}).encode()
    threads = [
        threading.Thread(target=slow_request, args=(
            pod, b"POST /hello/bob HTTP/1.1\r\nHost: pod\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode(), body, results, "body")),
        threading.Thread(target=slow_request, args=(
            pod, b"GET /hello/bob HTTP/1.1\r\n", b"X-Slow: " + b"a" * 40 + b"\r\n\r\n", results, "headers")),
    ]
    for thread in threads:
        thread.start()
    time.sleep(2)
    status, _, _ = send(pod, "GET", "/hello/carol")
    assert status == 200, "a slow client must not block others"
    for thread in threads:
        thread.join(timeout=40)
        assert not thread.is_alive(), "a slow request hung"
    body_answer, body_seconds = results["body"]
    assert body_seconds < 25, f"slow body held for {body_seconds:.0f} s"
    assert " 408 " in body_answer.split("\r\n")[0] and "application/problem+json" in body_answer, body_answer[:400]
    headers_answer, headers_seconds = results["headers"]
    assert headers_seconds < 25, f"slow headers held for {headers_seconds:.0f} s"
    # nginx closes a connection whose headers never finish; it may answer 408 first.
    assert headers_answer == "" or " 408 " in headers_answer.split("\r\n")[0], headers_answer[:400]


def test_the_per_client_rate_limit_answers_429_with_retry_after(rate_limited_pod):
    """One client (one source address) over pod-2's tiny limit: a burst of 3, then 1 a second.

    The limit is small so that the outcome does not depend on the machine's speed: 4 requests
    in a row exceed it unless they take more than a second each, and the loop stops at the first
    429 (at most 20 requests)."""
    pod, burst = rate_limited_pod
    source = next_source()
    answers = []
    for _ in range(20):
        answers.append(send(pod, "GET", "/hello/ratelimited", source=source))
        if answers[-1][0] == 429:
            break
    statuses = [status for status, _, _ in answers]
    assert statuses[-1] == 429, f"{len(answers)} requests in a row from one client were never limited: {statuses}"
    assert len(answers) > burst, f"limited within the burst of {burst}: {statuses}"
    assert all(status == 200 for status in statuses[:-1]), statuses
    status, headers, text = answers[-1]
    assert int(headers["Retry-After"]) >= 1, headers
    assert_clear_4xx(status, headers, text, "rate limit", allow_429=True)
    # Another client is not affected.
    assert send(pod, "GET", "/hello/ratelimited")[0] == 200


def test_only_a_trusted_proxy_names_the_client(rate_limited_pod):
    """pod-2's nginx trusts TRUSTED_PROXY (as it would an Ingress controller) to name the client
    in X-Forwarded-For: through it, each client has its own limit. Any other peer that sends the
    header is still the client itself: it cannot dodge its limit by naming someone else."""
    from conftest import TRUSTED_PROXY

    pod, burst = rate_limited_pod
    for client in range(1, 4):
        for _ in range(burst):
            status, _, text = send(pod, "GET", "/hello/proxied", source=TRUSTED_PROXY,
                                   headers={"X-Forwarded-For": f"198.51.100.{client}"})
            assert status == 200, f"client {client} behind the trusted proxy: {status} {text}"
    statuses = []
    for attempt in range(20):
        status, _, _ = send(pod, "GET", "/hello/proxied", source="127.0.1.201",
                            headers={"X-Forwarded-For": f"198.51.100.{50 + attempt}"})
        statuses.append(status)
        if status == 429:
            break
    assert statuses[-1] == 429 and len(statuses) > burst, f"an untrusted peer chose its own address: {statuses}"


def test_metrics_are_not_served_to_the_public(pod):
    """Prometheus scrapes hello-service's own port inside the cluster; through nginx, /metrics is
    nginx's 404 problem, whatever the method."""
    for method in ("GET", "POST", "HEAD"):
        status, headers, _ = send(pod, method, "/metrics")
        assert status == 404, f"{method} /metrics through nginx: {status}"
        assert headers.get("Content-Type", "").startswith("application/problem+json")
