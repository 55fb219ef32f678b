"""Limits against a real pod: a body too big, clients too slow, and the per-client rate limit
(from one address, and through a trusted proxy that names the client). Every refusal is a clear
4xx problem+json, other clients are served meanwhile, and nothing is stored."""

import json
import socket
import threading
import time

import pytest

from tests.support.clients import JSON, assert_clear_4xx, next_source, send

pytestmark = pytest.mark.usefixtures("nothing_stored")


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
    with socket.create_connection((pod.address, pod.nginx_port), timeout=30, source_address=(next_source(), 0)) as sock:
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


def test_only_a_trusted_proxy_names_the_client(rate_limited_pod, trusted_proxy):
    """pod-2's nginx trusts one proxy address (as it would an Ingress controller) to name the client
    in X-Forwarded-For: through it, each client has its own limit. Any other peer that sends the
    header is still the client itself: it cannot dodge its limit by naming someone else."""
    pod, burst = rate_limited_pod
    for client in range(1, 4):
        for _ in range(burst):
            status, _, text = send(pod, "GET", "/hello/proxied", source=trusted_proxy,
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
