"""The pod, for real (tests/support/pod.py): nginx with the repo's config + hello-service +
world-service (embedded store), nginx on 127.0.0.1:8080, hello on 127.0.0.1:8081, world on its
Unix socket only, with mounted-style config and secret directories, all in a temp dir that is
removed afterwards. The binaries come from target/debug (scripts/test.sh builds them first).
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.pod import ROOT, Pod
from tests.support.ports import is_listening

PLANTED_SECRET = "planted-secret-value-7f3a9c1e"
# Short, so that a test can wait for a read's lease to run out and see that nothing comes back.
LEASE_MS = 2000


@pytest.fixture(scope="session")
def planted_secret() -> str:
    """A value the pod holds as a secret (a mounted Secret's file and an environment variable):
    it must never show in /info or in a log."""
    return PLANTED_SECRET


@pytest.fixture(scope="session")
def lease_seconds() -> float:
    """How long an unconfirmed read's hellos stay hidden (WORLD_LEASE_MS)."""
    return LEASE_MS / 1000


@pytest.fixture(scope="session")
def pod():
    assert shutil.which("nginx"), "nginx is missing: apt-get install -y nginx (scripts/test.sh does this)"
    taken = [port for port in (8080, 8081) if is_listening("127.0.0.1", port)]
    assert not taken, f"ports {taken} on 127.0.0.1 are in use (is scripts/run-local.sh running?): stop it and retry"
    with tempfile.TemporaryDirectory(prefix="hello-pod-") as work:
        pod = Pod(
            Path(work), name="browser-test-pod", env={"RUST_LOG": "debug"},
            world_env={"WORLD_SHUTDOWN_DRAIN_MS": "0", "WORLD_LEASE_MS": str(LEASE_MS),
                       # A secret also handed over in the environment, as a Secret's secretKeyRef would.
                       "WORLD_MONGODB_URI_UNUSED": PLANTED_SECRET},
            # Every test here is one client claiming names: lift the claim limit (the Rust tests
            # check it with small numbers).
            hello_env={"HELLO_SHUTDOWN_DRAIN_MS": "0", "HELLO_CLAIM_RATE_PER_MINUTE": "6000",
                       "HELLO_CLAIM_BURST": "1000"})
        for folder in (pod.config_dir, pod.immutable_dir, pod.secret_dir):
            folder.mkdir(parents=True)
        (pod.config_dir / "banner").write_text("Browser test banner\n")
        (pod.immutable_dir / "release-channel").write_text("test\n")
        (pod.secret_dir / "api-token").write_text(PLANTED_SECRET)
        try:
            yield pod.start()
        finally:
            pod.stop()


@pytest.fixture(scope="session")
def public_nginx(pod):
    """nginx with the repo's config, its hidden-paths.conf replaced by the `public` component's
    (the file the component mounts over it), on 127.0.0.1:8090 in front of the same pod."""
    pod.start_nginx("public-nginx", 8090, includes={
        "hidden-paths.conf": ROOT / "deploy" / "components" / "public" / "hidden-paths.conf"})
    return "http://127.0.0.1:8090"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield browser
        browser.close()


@pytest.fixture()
def page(pod, browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(pod.url + "/")
    yield page
    context.close()
    assert not [error for error in errors if "Content Security Policy" in error], errors


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """docs/screenshots when UPDATE_SCREENSHOTS=1 (to refresh the README's pictures), else target/."""
    directory = ROOT / ("docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else "target/screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
