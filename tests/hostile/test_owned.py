"""The outsider's attack on claimed names (issue 30), each finding a regression test through a real
pod's nginx: case variants that two libraries judged apart, a release that left look-alike inboxes
readable, metric labels that grew with invented methods, tokens that reached nginx's logs, and
one client holding every connection. docs/security.md lists who reaches what and which test shows
it."""

import http.client
import json
import random
import re
import socket
import string
import time
import uuid
import pytest

from tests.support.clients import ALICE, JSON, hello_metrics, quote_name, send
from tests.support.pod import ROOT

# Upper and lower case of names in scripts with case (Unicode 16.0 or earlier): each pair is one
# inbox, so it must be one name for its claim.
CASE_PAIRS = [
    ("\u13e3\u13b3\u13a9", "\uabb3\uab83\uab79"),  # Cherokee ᏣᎳᎩ / ꮳꮃꭹ
    ("\u03a3\u039f\u03a6\u0399\u0391", "\u03c3\u03bf\u03c6\u03b9\u03b1"),  # Greek ΣΟΦΙΑ / σοφια
    ("\U00010414\U0001042f\U00010445", "\U0001043c\U0001042f\U00010445"),  # Deseret
    ("STRASSE", "stra\u00dfe"),  # full case folding: ß is ss
]
# Beria Erfe, new in Unicode 17.0: capitals and small letters, which `std` lower-cases and
# `caseless` (Unicode 16.0) does not fold. Names may not use them.
BERIA_ERFE = ("\U00016ea6\U00016ea7\U00016ea8", "\U00016ec1\U00016ec2\U00016ec3")
METHOD_LABELS = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "other"}


@pytest.fixture(scope="module")
def helper(cluster):
    """pod-1: no request limit of hello-service's, for the claims and hellos a test sets up."""
    return cluster.pods[1]


def claim(pod, name: str) -> str:
    status, _, text = send(pod, "POST", f"/names/{quote_name(name)}")
    assert status == 201, f"claim {name!r}: {status} {text}"
    return json.loads(text)["token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("upper, lower", CASE_PAIRS, ids=lambda s: ascii(s)[:24])
def test_a_case_variant_of_a_claimed_name_reads_claims_and_sends_as_nothing(pod, helper, upper, lower):
    # A digit suffix keeps each run's name fresh and the name in one script.
    suffix = str(random.randrange(10_000, 100_000))
    upper, lower = f"{upper}{suffix}", f"{lower}{suffix}"
    token = claim(helper, lower)
    assert send(helper, "POST", f"/hello/{quote_name(lower)}", ALICE, JSON)[0] == 201
    status, headers, text = send(pod, "GET", f"/hello/{quote_name(upper)}")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), f"read {upper!r}: {text}"
    assert send(pod, "POST", f"/names/{quote_name(upper)}")[0] == 409, f"claim {upper!r}"
    sender = json.dumps({"from": upper}).encode()
    assert send(pod, "POST", "/hello/dave", sender, JSON)[0] == 403, f"send as {upper!r}"
    # The owner reads the name's inbox (STRASSE is a look-alike of straße, not its inbox).
    status, _, text = send(pod, "GET", f"/hello/{quote_name(lower)}", None, bearer(token))
    assert status == 200 and len(json.loads(text)["hellos"]) == 1, text
    assert send(pod, "GET", f"/hello/{quote_name(upper)}", None, bearer(token))[0] == 200


def test_names_a_library_cannot_judge_are_refused(pod):
    for name in BERIA_ERFE:
        for method, path in (("POST", f"/names/{quote_name(name)}"), ("GET", f"/hello/{quote_name(name)}")):
            status, _, text = send(pod, method, path)
            assert status == 400, f"{method} {name!r}: {status} {text}"
            assert json.loads(text)["type"] == "/problems/invalid-name", text
            assert "Unicode 16.0" in json.loads(text)["detail"], text


def test_a_release_clears_every_look_alike_inbox(pod, helper):
    name = f"carol{uuid.uuid4().hex[:6]}"
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in name)
    token = claim(helper, name)
    assert send(helper, "POST", f"/hello/{quote_name(fullwidth)}", ALICE, JSON)[0] == 201
    assert send(pod, "GET", f"/hello/{quote_name(fullwidth)}")[0] == 401
    assert send(helper, "DELETE", f"/names/{name}", None, bearer(token))[0] == 204
    status, _, text = send(pod, "GET", f"/hello/{quote_name(fullwidth)}")
    assert status == 200 and json.loads(text)["hellos"] == [], f"a released name's look-alike: {text}"


def metric_labels(pod) -> dict[str, set[str]]:
    """Every method and route label of both services' request metrics, from hello's own port."""
    text = hello_metrics(pod)
    labels = {"method": set(), "route": set()}
    for line in text.splitlines():
        if re.match(r"(hello|world)_http_request", line):
            for label in labels:
                match = re.search(label + r'="([^"]*)"', line)
                if match:
                    labels[label].add(match.group(1))
    return labels


def raw_request(pod, request: bytes, source: str) -> bytes:
    with socket.create_connection((pod.address, pod.nginx_port), timeout=20, source_address=(source, 0)) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_a_thousand_invented_methods_and_paths_add_no_metric_series(pod):
    before = metric_labels(pod)
    token_characters = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
    sent_parts = []
    for index in range(1000):
        method = "".join(random.choice(token_characters) for _ in range(random.randint(1, 40)))
        if index % 2:  # half of them in nginx's own alphabet, which reaches its 405
            method = "".join(random.choice(string.ascii_uppercase + "_") for _ in range(random.randint(1, 40)))
        part = "".join(random.choice(string.ascii_lowercase) for _ in range(10))
        sent_parts.append(part)
        path = random.choice(["/hello/", "/names/", "/", "/hello/bob/reads/", "/x/"]) + part
        request = f"{method} {path} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n".encode()
        answer = raw_request(pod, request, f"127.0.2.{index % 250 + 1}")
        assert answer.split(b" ")[1:2] in ([b"400"], [b"404"], [b"405"]), f"{method} {path}: {answer[:200]!r}"
    after = metric_labels(pod)
    assert after["method"] <= METHOD_LABELS, after["method"] - METHOD_LABELS
    leaked = {route for route in after["route"] - before["route"] if any(p in route for p in sent_parts)}
    assert not leaked, leaked


def test_nginx_answers_methods_the_api_does_not_use_within_a_per_client_budget(pod):
    connection = http.client.HTTPConnection(pod.address, pod.nginx_port, timeout=20, source_address=("127.0.3.1", 0))
    statuses = []
    try:
        # Until the budget (bursts of 200, 50 a second) runs out, however fast this machine is;
        # bounded in count.
        while 429 not in statuses and len(statuses) < 5000:
            connection.request("BREW", "/hello/bob")
            response = connection.getresponse()
            body = response.read()
            statuses.append(response.status)
            if response.status == 429:
                assert response.getheader("Retry-After") and json.loads(body)["status"] == 429
    finally:
        connection.close()
    assert statuses[0] == 405 and 429 in statuses, statuses[:5]
    status, headers, text = send(pod, "BREW", "/hello/bob", source="127.0.3.2")
    assert status == 405 and headers["Allow"] == "GET, POST", f"another client: {status} {text}"


def configured_connections_per_client() -> int:
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    return int(re.search(r"^\s*limit_conn requests_per_client (\d+);", conf, re.M).group(1))


def test_one_client_cannot_hold_every_connection_and_another_is_still_served(helper):
    # pod-1: hello-service's own request limit is lifted there, so that it waits for each body
    # (and the requests stay in progress) instead of refusing the client itself.
    pod = helper
    limit = configured_connections_per_client()
    held = []
    try:
        # Requests in progress: each sends its headers and holds back its body.
        for _ in range(limit):
            connection = socket.create_connection((pod.address, pod.nginx_port), timeout=20, source_address=("127.0.3.10", 0))
            connection.sendall(b"POST /hello/bob HTTP/1.1\r\nHost: pod\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 100\r\n\r\n")
            held.append(connection)
        time.sleep(0.5)
        status, headers, text = send(pod, "GET", "/healthz", source="127.0.3.10")
        assert status == 429 and headers.get("Retry-After"), f"one over the limit of {limit}: {status} {text}"
        assert json.loads(text)["type"] == "/problems/too-many-requests"
        status, _, text = send(pod, "GET", "/healthz", source="127.0.3.11")
        assert status == 200, f"another client while one holds {limit}: {status} {text}"
    finally:
        for connection in held:
            connection.close()


def test_no_token_reaches_any_log_line(pod, helper, cluster):
    name = f"logs{uuid.uuid4().hex[:6]}"
    token = claim(helper, name)
    # A 413 with a token in the query (nginx's error log recorded its request line), a token in
    # the path, percent-encoded, and in a key.
    big = b"x" * 300_000
    for path in (f"/hello/{name}?access_token={token}", f"/hello/{name}?x={quote_name(token).replace('_', '%5F')}",
                 f"/hello/{token}", f"/hello/{token}/reads", f"/hello/{name}?{token}=1"):
        status, _, text = send(pod, "POST", path, big if "access" in path else None, JSON)
        assert status == 400 and json.loads(text)["type"] == "/problems/token-in-query", f"{path[:40]}: {text}"
    time.sleep(1.5)  # nginx writes its access log at most a second late
    for process in pod.containers():
        text = process.log_path.read_text(errors="replace")
        assert token[3:] not in text, f"{process.name}'s log holds the token"
