"""Hostile requests against names that belong to someone, through a real pod's nginx: odd and
oversized Authorization headers, tokens in query strings, look-alikes in every position, and a
flood of claims. Every answer is a clear 4xx problem+json; nothing is drained, nothing changes
hands. The claimed name and its hello are made through pod-1 (all pods share the store), so the
corpus's pod-0 can still show that it stored nothing."""

import json
import uuid

import pytest

from tests.support.clients import ALICE, JSON, assert_clear_4xx, quote_name, send


@pytest.fixture(scope="module")
def owned(cluster):
    """(name, token) of a name claimed through pod-1, with one hello waiting for it."""
    helper = cluster.pods[1]
    name = f"owner{uuid.uuid4().hex[:8]}"
    status, _, text = send(helper, "POST", f"/names/{name}")
    assert status == 201, text
    assert send(helper, "POST", f"/hello/{name}", ALICE, JSON)[0] == 201
    return name, json.loads(text)["token"]


def hostile_authorizations(token: str) -> list[str]:
    return [
        "Bearer", "Bearer ", "bearer\t" + token, "Basic YWxpY2U6c2VjcmV0", "Digest username=x",
        "Bearer " + "a" * 300, "Bearer " + token + " extra", "Bearer ===", "Bearer a=b",
        "Bearer %00", "Bearer " + token.replace("hw_", "hw_\u00e9"), "Bearer {\"$ne\":null}",
        "Token " + token, token,
    ]


def test_odd_authorization_headers_are_refused_and_drain_nothing(pod, owned):
    name, token = owned
    requests = [
        ("GET", f"/hello/{name}", None, {}),
        ("POST", f"/hello/{name}/reads", None, {}),
        ("POST", f"/names/{name}/token", None, {}),
        ("DELETE", f"/names/{name}", None, {}),
        ("POST", "/hello/somebody", json.dumps({"from": name}).encode(), JSON),
    ]
    for authorization in hostile_authorizations(token):
        for method, path, body, headers in requests:
            status, answer_headers, text = send(
                pod, method, path, body, {**headers, "Authorization": authorization.encode("utf-8").decode("latin-1")})
            assert_clear_4xx(status, answer_headers, text, f"{method} {path} with {authorization[:30]!r}")
            assert status in (400, 401, 403), f"{method} {path} {authorization[:30]!r}: {status} {text}"
    # Several Authorization headers at once.
    status, headers, text = send(pod, "GET", f"/hello/{name}", None, {"Authorization": f"Bearer {token}"},
                                 extra=[("Authorization", "Bearer hw_other")])
    assert_clear_4xx(status, headers, text, "two Authorization headers")
    # A header far over nginx's limit is its 400, not a 5xx.
    status, headers, text = send(pod, "GET", f"/hello/{name}", None, {"Authorization": "Bearer " + "x" * 20000})
    assert_clear_4xx(status, headers, text, "a 20 kB Authorization header")
    # Nothing was drained or changed hands: the owner still reads the one hello.
    status, _, text = send(pod, "GET", f"/hello/{name}", None, {"Authorization": f"Bearer {token}"})
    assert status == 200 and len(json.loads(text)["hellos"]) == 1, text


def test_tokens_in_query_strings_are_refused_everywhere(pod, owned):
    name, token = owned
    for method, path in [("GET", f"/hello/{name}"), ("POST", f"/hello/{name}/reads"),
                         ("POST", f"/names/{name}/token"), ("DELETE", f"/names/{name}"),
                         ("POST", "/hello/somebody"), ("GET", "/info")]:
        for query in (f"access_token={token}", f"ACCESS_TOKEN={token}", f"limit=1&t={token}",
                      f"x={quote_name(token)}", "access_token="):
            status, headers, text = send(pod, method, f"{path}?{query}")
            assert_clear_4xx(status, headers, text, f"{method} {path}?{query[:30]}")
            assert json.loads(text)["type"] == "/problems/token-in-query", text
            assert token not in text


def test_lookalikes_of_a_claimed_name_are_covered_in_every_position(pod, owned):
    name, token = owned
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name)
    bold = "".join(chr(0x1D41A + ord(c) - ord("a")) if "a" <= c <= "z" else c for c in name)
    for lookalike in (name.upper(), fullwidth, bold):
        path = f"/hello/{quote_name(lookalike)}"
        assert send(pod, "POST", f"/names/{quote_name(lookalike)}")[0] == 409, lookalike
        status, headers, text = send(pod, "GET", path)
        assert_clear_4xx(status, headers, text, f"read {lookalike!r}")
        assert status == 401
        status, headers, text = send(pod, "POST", "/hello/somebody", json.dumps({"from": lookalike}).encode(), JSON)
        assert_clear_4xx(status, headers, text, f"send as {lookalike!r}")
        assert status == 403
        status, headers, text = send(pod, "POST", f"/hello/somebody?from={quote_name(lookalike)}")
        assert status == 403, text
        if lookalike != name.upper():
            # Another inbox that only looks like the name: it cannot be released or rotated as
            # if it were the name, even with the owner's token.
            for method, suffix in (("DELETE", ""), ("POST", "/token")):
                status, headers, text = send(pod, method, f"/names/{quote_name(lookalike)}{suffix}", None,
                                             {"Authorization": f"Bearer {token}"})
                assert_clear_4xx(status, headers, text, f"{method} names/{lookalike!r}{suffix}")
                assert status == 404, text


def test_a_flood_of_claims_from_one_client_is_slowed_down(pod):
    source = "127.0.1.250"
    statuses = []
    for _ in range(12):
        status, headers, text = send(pod, "POST", f"/names/flood{uuid.uuid4().hex[:10]}", source=source)
        assert status in (201, 429), f"{status} {text}"
        if status == 429:
            assert headers.get("Retry-After"), headers
            assert_clear_4xx(status, headers, text, "claim flood", allow_429=True)
        statuses.append(status)
    assert 429 in statuses, f"12 claims from one client were all accepted: {statuses}"
