"""Names that belong to someone, through the pod's real nginx: the /names API is proxied, API
paths win over static files, and no token ever reaches a log line of nginx, hello or world (the
pod logs at debug level here), nor /info, even when one is sent where it must not go."""

import json
import urllib.error
import urllib.request
import uuid

from playwright.sync_api import expect

from tests.support.ports import is_listening


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claim(pod, name: str) -> str:
    status, headers, body = pod.request("POST", f"/names/{name}")
    assert status == 201, body
    assert headers["Cache-Control"] == "no-store"
    return json.loads(body)["token"]


def test_an_api_path_that_looks_like_a_file_is_answered_by_the_api(pod):
    status, headers, body = pod.get(f"/hello/file{uuid.uuid4().hex[:6]}.js")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["hellos"] == []


def test_the_whole_ownership_flow_through_nginx_leaves_no_token_in_any_log(pod):
    name = f"own{uuid.uuid4().hex[:8]}"
    token = claim(pod, name)
    assert pod.request("POST", f"/names/{name}")[0] == 409

    status, _, body = pod.request("POST", f"/hello/{name}", json.dumps({"from": "alice"}).encode(),
                              {"Content-Type": "application/json"})
    assert status == 201, body
    status, headers, _ = pod.get(f"/hello/{name}")
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="hello"'
    status, _, body = pod.get(f"/hello/{name}", bearer(token))
    assert status == 200 and json.loads(body)["hellos"][0]["from"] == "alice"

    # Sent where it must not go: refused, and still not written down anywhere.
    for query in (f"?access_token={token}", f"?limit=5&t={token}"):
        status, _, body = pod.get(f"/hello/{name}{query}")
        assert status == 400 and json.loads(body)["type"] == "/problems/token-in-query", body
    status, _, _ = pod.get(f"/hello/{name}", {"Cookie": f"session={token}", **bearer(token)})
    assert status == 200

    # Verified sends, rotation, release.
    status, _, body = pod.request("POST", "/hello/someone", None, bearer(token))
    assert status == 201 and json.loads(body)["verified"] is True, body
    status, _, body = pod.request("POST", f"/names/{name}/token", None, bearer(token))
    assert status == 201, body
    rotated = json.loads(body)["token"]
    assert pod.get(f"/hello/{name}", bearer(token))[0] == 401
    assert pod.request("DELETE", f"/names/{name}", None, bearer(rotated))[0] == 204

    status, _, info = pod.get("/info")
    assert status == 200
    # nginx's line for the release, the last request that carried a token: every line before it
    # (the requests with tokens in the query) is in the logs once it is.
    logs = pod.log_text_once(f'"method":"DELETE","uri":"/names/{name}"')
    for secret in (token, rotated):
        assert secret not in info, "/info shows a token"
        # The random part alone, too: a log could drop or encode the prefix.
        assert secret[3:] not in logs, "a log line holds a token"


def test_a_name_claimed_on_the_page_is_read_sent_as_rotated_and_released_from_it(pod, page, browser, screenshots):
    name = f"pg{uuid.uuid4().hex[:8]}"
    page.get_by_label("Name to claim").fill(name)
    page.get_by_role("button", name="Claim name").click()
    result = page.locator("#claim-result")
    expect(result).to_contain_text(f"{name} is yours")
    token = page.locator("#claim-result code.token").inner_text()
    assert token.startswith("hw_")
    assert token in page.evaluate("() => localStorage.getItem('hello.tokens')"), "kept in local storage"
    expect(page.locator("#owned-names")).to_contain_text(name)
    page.screenshot(path=str(screenshots / "claimed.png"), full_page=True)

    # Someone else's browser cannot read the claimed inbox.
    pod.request("POST", f"/hello/{name}", json.dumps({"from": "zed"}).encode(), {"Content-Type": "application/json"})
    stranger = browser.new_context()
    other = stranger.new_page()
    other.goto(pod.url + "/")
    other.get_by_label("Name", exact=True).fill(name)
    other.get_by_role("button", name="Check inbox").click()
    expect(other.locator("#inbox-error")).to_contain_text("claimed")
    stranger.close()

    # This browser reads it with its token, and sends verified hellos as the name.
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Check inbox").click()
    expect(page.locator("#inbox-result li")).to_have_count(1)
    recipient = f"rc{uuid.uuid4().hex[:8]}"
    page.get_by_label("From", exact=True).fill(name)
    page.get_by_label("To", exact=True).fill(recipient)
    page.get_by_role("button", name="Send hello").click()
    expect(page.locator("#send-result")).to_contain_text("Verified hello")
    page.get_by_label("Name", exact=True).fill(recipient)
    page.get_by_role("button", name="Check inbox").click()
    expect(page.locator("#inbox-result .verified")).to_have_count(1)

    # A new token replaces the old one at once.
    page.get_by_role("button", name=f"New token for {name}").click()
    expect(result).to_contain_text("new token")
    rotated = page.locator("#claim-result code.token").inner_text()
    assert rotated != token and rotated.startswith("hw_")
    assert pod.get(f"/hello/{name}", bearer(token))[0] == 401
    assert pod.get(f"/hello/{name}", bearer(rotated))[0] == 200

    # Releasing frees the name and forgets its token here.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Release for {name}").click()
    expect(result).to_contain_text("free again")
    assert name not in (page.evaluate("() => localStorage.getItem('hello.tokens')") or "")
    expect(page.locator("#owned-empty")).to_be_visible()
    assert pod.request("POST", f"/names/{name}")[0] == 201, "free to claim again"


def test_no_token_reaches_a_log_line_from_a_413_a_path_or_a_request_while_hello_is_down(pod):
    """nginx's error log records the request line of a 413 and of a request it could not proxy:
    a token in the address is refused before either can happen, and one in Authorization is
    never written. A second nginx with the repo's config, whose hello is down (its upstream port
    has no listener), takes the same requests."""
    name = f"logs{uuid.uuid4().hex[:8]}"
    token = claim(pod, name)
    # Its upstream, hello, on a port nothing listens on.
    down_port = 8092
    assert not is_listening("127.0.0.1", down_port), f"port {down_port} on 127.0.0.1 is in use"
    pod.start_nginx("hello-down-nginx", 8091, hello=f"127.0.0.1:{down_port}")

    def send(base: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> int:
        call = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(call, timeout=20) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    big = b"x" * 300_000
    for base in (pod.url, "http://127.0.0.1:8091"):
        # A 413 with a token in the query, a token in the path, and a token in its header.
        assert send(base, "POST", f"/hello/{name}?access_token={token}", big, {"Content-Type": "application/json"}) == 400
        assert send(base, "GET", f"/hello/{token}") == 400
        assert send(base, "POST", f"/hello/{name}/reads", b"", bearer(token)) in (201, 503)
        assert send(base, "POST", f"/hello/x?note=Bearer%20{token}") == 400
    # The request the down pod could not proxy reached its error log; everything before it too.
    logs = pod.log_text_once(f"/hello/{name}/reads")
    assert "connect() failed" in logs, "the second nginx never tried its hello"
    assert token[3:] not in logs, "a log line holds the token"
