"""The pod as a person meets it: the page in a real headless Chromium, and curl-style requests
through nginx."""

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid

from playwright.sync_api import expect

from tests.support.pod import ROOT


def post(pod, path: str, body: dict, headers: dict[str, str] | None = None):
    return pod.request("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})


def test_a_hello_sent_from_the_page_shows_in_the_inbox_once(pod, page, screenshots):
    recipient = f"bob{uuid.uuid4().hex[:6]}"
    page.get_by_label("From", exact=True).fill("alice")
    page.get_by_label("To", exact=True).fill(recipient)
    page.get_by_role("button", name="Send hello").click()
    expect(page.locator("#send-result")).to_contain_text(f"Hello from alice to {recipient} stored")
    expect(page.locator("#send-result")).to_contain_text(pod.name)

    page.get_by_label("Name", exact=True).fill(recipient)
    page.get_by_role("button", name="Check inbox").click()
    inbox = page.locator("#inbox-result")
    expect(inbox).to_contain_text(f"1 new hello for {recipient}")
    expect(inbox.locator("li")).to_have_count(1)
    expect(inbox.locator("li").first).to_contain_text("alice")
    expect(page.locator("#pod-counts")).to_contain_text(pod.name)
    expect(page.locator("#info-config")).to_contain_text("HELLO_LISTEN")
    page.screenshot(path=str(screenshots / "inbox.png"), full_page=True)

    page.get_by_role("button", name="Check inbox").click()
    expect(inbox).to_contain_text(f"Nothing new for {recipient}")


def test_hellos_the_page_could_not_confirm_come_back_instead_of_being_lost(pod, page, lease_seconds):
    """The page reads reliably: it confirms only after showing the hellos. Here the network
    drops every confirmation, as a lost connection or a reload at the wrong moment would."""
    recipient = f"cleo{uuid.uuid4().hex[:6]}"
    assert post(pod, f"/hello/{recipient}", {"from": "alice"})[0] == 201

    def drop_confirmations(route):
        if route.request.method == "DELETE":
            route.abort()
        else:
            route.continue_()

    page.route("**/reads/*", drop_confirmations)
    page.get_by_label("Name", exact=True).fill(recipient)
    page.get_by_role("button", name="Check inbox").click()
    inbox = page.locator("#inbox-result")
    expect(inbox.locator("li")).to_have_count(1)
    expect(inbox).to_contain_text("nothing is lost")
    page.unroute("**/reads/*")

    time.sleep(lease_seconds + 1)  # the unconfirmed read's lease runs out
    page.get_by_role("button", name="Check inbox").click()
    expect(inbox).to_contain_text(f"1 new hello for {recipient}")
    expect(inbox.locator("li").first).to_contain_text("alice")
    expect(inbox).not_to_contain_text("nothing is lost")  # confirmed this time
    page.get_by_role("button", name="Check inbox").click()
    expect(inbox).to_contain_text(f"Nothing new for {recipient}")


def test_a_confirmation_that_failed_once_is_repeated_and_nothing_shows_twice(pod, page, lease_seconds):
    """Confirming twice is safe, so the page repeats a confirmation the network dropped."""
    recipient = f"dora{uuid.uuid4().hex[:6]}"
    assert post(pod, f"/hello/{recipient}", {"from": "alice"})[0] == 201
    dropped = []

    def drop_the_first_confirmation(route):
        if route.request.method == "DELETE" and not dropped:
            dropped.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/reads/*", drop_the_first_confirmation)
    page.get_by_label("Name", exact=True).fill(recipient)
    # The aborted first attempt has no response: the first DELETE response is the retry's.
    with page.expect_response(lambda r: r.request.method == "DELETE", timeout=10_000) as confirmation:
        page.get_by_role("button", name="Check inbox").click()
    assert dropped, "the first confirmation was not attempted"
    assert confirmation.value.status == 204
    inbox = page.locator("#inbox-result")
    expect(inbox.locator("li")).to_have_count(1)
    expect(inbox).not_to_contain_text("nothing is lost")
    page.unroute("**/reads/*")
    time.sleep(lease_seconds + 1)  # had it not been confirmed, it would be back by now
    page.get_by_role("button", name="Check inbox").click()
    expect(inbox).to_contain_text(f"Nothing new for {recipient}")


def test_an_invalid_name_shows_the_problem_next_to_the_field(page, screenshots):
    page.get_by_label("From", exact=True).fill("alice")
    page.get_by_label("To", exact=True).fill("$bob")
    page.get_by_role("button", name="Send hello").click()
    error = page.locator("#send-to-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("must start with a letter or a digit")
    expect(page.get_by_label("To", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#send-from-error")).to_be_hidden()
    page.screenshot(path=str(screenshots / "error.png"), full_page=False)


def test_a_value_written_to_the_mounted_config_shows_without_a_restart(pod, page):
    pids_before = pod.pids()
    value = f"live-{uuid.uuid4().hex[:8]}"
    (pod.config_dir / "greeting-colour").write_text(value + "\n")
    page.get_by_role("button", name="Refresh").click()
    row = page.locator("#info-config tr", has_text="greeting-colour").first
    expect(row).to_contain_text(value)
    expect(row).to_contain_text("mounted file")
    assert pod.pids() == pids_before and all(process.running for process in pod.containers())


def test_the_page_is_usable_with_the_keyboard_and_on_a_phone(pod, browser, screenshots):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(pod.url + "/")
    page.keyboard.press("Tab")  # skip link
    page.keyboard.press("Tab")
    page.keyboard.type("carol")
    page.keyboard.press("Tab")
    page.keyboard.type("dave")
    page.keyboard.press("Enter")
    expect(page.locator("#send-result")).to_contain_text("Hello from carol to dave stored")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, "no sideways scrolling on a phone"
    page.screenshot(path=str(screenshots / "phone.png"), full_page=False)
    # The pod's configuration reads as one stacked entry per setting: nothing needs scrolling
    # sideways, in the page or in the table's own box.
    expect(page.locator("#info-config tbody tr").first).to_be_visible()
    wrap = page.locator("#info-config").locator("xpath=..")
    assert wrap.evaluate("box => box.scrollWidth <= box.clientWidth"), "the configuration scrolls sideways"
    row_height = page.locator("#info-config tbody tr").first.evaluate("row => row.getBoundingClientRect().height")
    assert row_height < 200, f"a setting takes {row_height:.0f} px on a phone"
    box = page.locator("#info-config").bounding_box()
    page.screenshot(path=str(screenshots / "phone-config.png"), full_page=True,
                    clip={"x": 0, "y": box["y"] - 60, "width": 390, "height": 700})
    context.close()


def test_the_api_answers_through_nginx_with_request_ids(pod):
    status, headers, body = post(pod, "/hello/erin", {"from": "frank"}, {"X-Request-Id": "trace-me-42"})
    assert status == 201, body
    assert headers["X-Request-Id"] == "trace-me-42"
    assert headers["X-Pod-Name"] == pod.name
    assert json.loads(body)["to"] == "erin"
    status, headers, body = pod.get("/hello/erin")
    assert status == 200 and json.loads(body)["hellos"][0]["from"] == "frank"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-Id"]), "nginx makes an id when none is sent"
    # The id reaches both services' logs.
    time.sleep(0.2)
    logs = pod.log_text()
    assert logs.count("trace-me-42") >= 2, "the request id should appear in hello's and world's logs"

    status, _, body = pod.get("/info")
    info = json.loads(body)
    assert status == 200 and info["pod"]["name"] == pod.name and info["pod"]["node"] == "test-node"
    assert info["world"]["store"] == "embedded"

    status, headers, _ = pod.get("/metrics")
    assert status == 404 and headers["Content-Type"] == "application/problem+json", "nginx does not serve /metrics"
    with urllib.request.urlopen(pod.hello_url + "/metrics", timeout=10) as response:
        status, headers, body = response.status, response.headers, response.read().decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert "hello_http_requests_total" in body and "world_http_requests_total" in body
    assert "world_store_operation_duration_seconds" in body and "hello_world_metrics_up 1" in body
    # One scrape holds both processes: their own process metrics apart, and no family twice.
    for service in ("hello", "world"):
        for family in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"):
            assert re.search(rf"^{service}_{family} \d", body, re.M), f"{service}_{family} missing"
    families = re.findall(r"^# TYPE (\S+)", body, re.M)
    assert len(families) == len(set(families)), "a metric family appears twice in one scrape"

    for header in ("Content-Security-Policy", "X-Content-Type-Options", "X-Pod-Name"):
        assert header in pod.get("/")[1], f"{header} missing on the page"
    status, headers, body = pod.get("/no-such-page")
    assert status == 404 and headers["Content-Type"] == "application/problem+json"
    assert headers["X-Pod-Name"], "nginx's own answers name the pod too"


def test_a_secret_value_never_shows_in_info_or_logs(pod, planted_secret):
    status, _, body = pod.get("/info")
    assert status == 200
    info = json.loads(body)
    keys = {entry["key"]: entry for entry in info["secrets"]}
    assert "api-token" in keys and set(keys["api-token"]) == {"key", "source"}, "key names only"
    assert planted_secret not in body, "/info leaked a secret value"
    time.sleep(0.2)
    assert planted_secret not in pod.log_text(), "a log leaked a secret value"


def curl(*arguments: str) -> str:
    """What the real curl prints (it reads the whole answer, then closes the connection)."""
    return subprocess.run(["curl", "--silent", "--show-error", "--max-time", "10", *arguments],
                          check=True, capture_output=True, text=True).stdout


def test_plain_curl_reads_each_hello_once_straight_to_hello_service_and_through_nginx(pod, lease_seconds):
    names = {pod.hello_url: f"direct{uuid.uuid4().hex[:6]}", pod.url: f"proxied{uuid.uuid4().hex[:6]}"}
    for base, name in names.items():
        assert post(pod, f"/hello/{name}", {"from": "alice"})[0] == 201
        inbox = json.loads(curl(f"{base}/hello/{name}"))
        assert [hello["from"] for hello in inbox["hellos"]] == ["alice"], inbox
        # HTTP/1.0, and a keep-alive client that closes by itself, the same.
        assert post(pod, f"/hello/{name}", {"from": "bea"})[0] == 201
        inbox = json.loads(curl("--http1.0", f"{base}/hello/{name}"))
        assert [hello["from"] for hello in inbox["hellos"]] == ["bea"], inbox
    # Once the lease has run out, an answer that was not delivered would come back: none does.
    time.sleep(lease_seconds + 1)
    for base, name in names.items():
        # (text mode turns curl's CRLF line ends into LF)
        head, _, body = curl("--include", f"{base}/hello/{name}").partition("\n\n")
        assert json.loads(body)["hellos"] == [], f"{base}: {body}"
        assert re.search(r"^cache-control: no-store$", head, re.IGNORECASE | re.MULTILINE), head


def test_every_api_answer_through_nginx_says_not_to_cache_it(pod):
    """hello-service's answers, and the problems Nginx makes itself (404, 405, 413, 414)."""
    answers = {
        "GET /hello/bob": pod.get("/hello/bob"),
        "GET /hello/$bad": pod.get("/hello/$bad"),
        "GET /nowhere": pod.get("/nowhere"),
        "PUT /hello/bob": pod.request("PUT", "/hello/bob"),
        "POST 20 KiB": pod.request("POST", "/hello/bob", b"x" * 20_000, {"Content-Type": "application/json"}),
        "GET 9 KiB address": pod.get("/hello/" + "a" * 9000),
    }
    for what, (status, headers, _) in answers.items():
        assert headers.get("Cache-Control") == "no-store", f"{what}: {status} {dict(headers)}"


def test_the_smoke_test_passes_against_the_pod_and_fails_with_the_fix_without_one(pod):
    """scripts/smoke.sh, what a user runs against a deployment, through the pod's real nginx."""
    smoke = str(ROOT / "scripts" / "smoke.sh")
    passed = subprocess.run([smoke, pod.url], capture_output=True, text=True, timeout=120)
    last = passed.stdout.strip().splitlines()[-1]
    assert passed.returncode == 0 and last.startswith("smoke: OK"), passed.stdout + passed.stderr
    nobody = subprocess.run([smoke, "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    last = nobody.stdout.strip().splitlines()[-1]
    assert nobody.returncode == 1 and last.startswith("smoke: FAILED") and "reachable" in last, nobody.stdout


def test_the_public_setup_hides_info_from_the_public_but_not_from_operators(pod, public_nginx, browser):
    """nginx with the `public` component's hidden-paths.conf answers /info with its 404 problem;
    hello-service's own port (what an operator port-forwards to) still answers it, and the page
    served through the public nginx drops its "This pod" panel while the rest works."""
    with urllib.request.urlopen(pod.hello_url + "/info", timeout=5) as answer:
        assert answer.status == 200 and json.load(answer)["pod"]["name"] == pod.name
    try:
        urllib.request.urlopen(public_nginx + "/info", timeout=5)
        raise AssertionError("the public nginx served /info")
    except urllib.error.HTTPError as error:
        assert error.code == 404
        assert error.headers["Content-Type"].startswith("application/problem+json")
        assert pod.name not in error.read().decode()
    with urllib.request.urlopen(public_nginx + "/readyz", timeout=5) as answer:
        assert answer.status == 200, "the rest of the API is served as before"

    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(public_nginx + "/")
        expect(page.locator("#info-title")).to_be_hidden()
        expect(page.get_by_role("button", name="Send hello")).to_be_visible()
        page.goto(pod.url + "/")
        expect(page.locator("#info-title")).to_be_visible()
    finally:
        context.close()
