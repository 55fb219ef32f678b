"""A corpus of hostile requests against a real pod (nginx -> hello -> world -> nx-27017).

Every answer must be a clear 4xx problem+json, never a 5xx or a hang, and nothing may be stored.
Each request comes from its own loopback source address (127.0.1.x), as separate clients would,
so that the per-client rate limit does not answer in place of the check under test (the limit
itself, and oversized and slow requests: test_limits.py).
"""

import json
import posixpath
import urllib.parse

import pytest

from tests.support.clients import ALICE, JSON, assert_clear_4xx, raw_path, send

pytestmark = pytest.mark.usefixtures("nothing_stored")

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
    "/hello/%2e%2e/no-such-file.css",  # nginx's 404 at an address with a file's extension
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


def resolves_to_the_page(path: str) -> bool:
    """Whether nginx, which resolves dot segments (percent-encoded ones too) before it picks a
    location, finds `path` to be "/": the page, not the API."""
    return posixpath.normpath(urllib.parse.unquote(path.split("?")[0])) == "/"


def assert_the_page(status, headers, text, what):
    assert status == 200 and headers.get("Content-Type", "").startswith("text/html"), f"{what}: {status} {text[:200]}"
    assert "<title>Scalable Hello World</title>" in text, f"{what}: {text[:200]}"


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: ascii(n)[:40])
def test_hostile_names_are_refused(pod, name):
    path = raw_path(name)
    assert_clear_4xx(*send(pod, "POST", path, ALICE, JSON), f"POST {name!r}")
    check_get = assert_the_page if resolves_to_the_page(path) else assert_clear_4xx
    check_get(*send(pod, "GET", path), f"GET {name!r}")
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
        if method == "GET" and resolves_to_the_page(path):
            assert_the_page(status, headers, text, f"GET {path}")
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
    ("DELETE", "/info"), ("POST", "/openapi.json"), ("TRACE", "/"), ("PUT", "/"), ("POST", "/favicon.svg"),
])
def test_wrong_methods_are_405_with_allow(pod, method, path):
    status, headers, text = send(pod, method, path, b"" if method != "TRACE" else None)
    assert_clear_4xx(status, headers, text, f"{method} {path}")
    assert status == 405 and headers.get("Allow"), f"{method} {path}: {status} {headers}"


def test_metrics_are_not_served_to_the_public(pod):
    """Prometheus scrapes hello-service's own port inside the cluster; through nginx, /metrics is
    nginx's 404 problem, whatever the method."""
    for method in ("GET", "POST", "HEAD"):
        status, headers, _ = send(pod, method, "/metrics")
        assert status == 404, f"{method} /metrics through nginx: {status}"
        assert headers.get("Content-Type", "").startswith("application/problem+json")
