"""The pod, for real: nginx (deploy/nginx/nginx.conf, unchanged) + hello-service + world-service
(embedded store): nginx on 127.0.0.1:8080, hello on 127.0.0.1:8081, world on its Unix socket only,
as in the pod, with mounted-style config and secret directories.

Processes are started here and stopped by their PID; everything lives in a temp dir that is
removed afterwards. The binaries come from target/debug (scripts/test.sh builds them first).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("BIN_DIR", ROOT / "target" / "debug"))
PLANTED_SECRET = "planted-secret-value-7f3a9c1e"
POD_NAME = "browser-test-pod"
BASE_URL = "http://127.0.0.1:8080"
# A second nginx in front of the same hello-service, configured as the `public` component
# configures it (deploy/components/public: /info not served).
PUBLIC_URL = "http://127.0.0.1:8090"
HELLO_URL = "http://127.0.0.1:8081"
# Short, so that a test can wait for a read's lease to run out and see that nothing comes back.
LEASE_MS = 2000


class Pod:
    def __init__(self, work: Path):
        self.work = work
        self.config_dir = work / "config"
        self.immutable_dir = work / "config-immutable"
        self.secret_dir = work / "secret"
        self.logs = work / "logs"
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "wb")
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.processes.append(process)

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.logs.glob("*.log")))

    def log_text_once(self, written: str, timeout: float = 15.0) -> str:
        """All the logs, once `written` is in them. nginx buffers its access log (64 KiB or one
        second), so its lines arrive in batches: a check of what the logs hold waits for the line
        of the last request it cares about, which brings every line before it."""
        deadline = time.monotonic() + timeout
        while written not in (logs := self.log_text()):
            assert time.monotonic() < deadline, f"{written!r} did not reach the logs within {timeout} s"
            time.sleep(0.05)
        return logs

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def port_is_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def request(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """(status, headers (case-insensitive), body text) of one request to the pod through nginx."""
    prepared = urllib.request.Request(BASE_URL + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(prepared, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def get(path: str, headers: dict[str, str] | None = None):
    return request("GET", path, headers=headers)


@pytest.fixture(scope="session")
def pod():
    for binary in ("hello-service", "world-service"):
        assert (BIN_DIR / binary).exists(), f"{BIN_DIR / binary} is missing: run cargo build --workspace first"
    assert shutil.which("nginx"), "nginx is missing: apt-get install -y nginx (scripts/test.sh does this)"
    taken = [port for port in (8080, 8081) if port_is_taken(port)]
    assert not taken, f"ports {taken} on 127.0.0.1 are in use (is scripts/run-local.sh running?): stop it and retry"

    work = Path(tempfile.mkdtemp(prefix="hello-pod-"))
    # nginx's workers run as an unprivileged user when the master is root: let them in.
    work.chmod(0o755)
    pod = Pod(work)
    for directory in (pod.config_dir, pod.immutable_dir, pod.secret_dir, pod.logs, work / "nginx" / "tmp"):
        directory.mkdir(parents=True)
    # A copy, not a link: nginx's workers run as an unprivileged user, who may not be allowed
    # into the folder the repository was cloned to.
    shutil.copytree(ROOT / "frontend", work / "nginx" / "html")
    (pod.config_dir / "banner").write_text("Browser test banner\n")
    (pod.immutable_dir / "release-channel").write_text("test\n")
    (pod.secret_dir / "api-token").write_text(PLANTED_SECRET)

    shared = {"POD_NAME": POD_NAME, "POD_IP": "127.0.0.1", "NODE_NAME": "test-node", "RUST_LOG": "debug"}
    for service in ("HELLO", "WORLD"):
        shared[f"{service}_CONFIG_DIR"] = str(pod.config_dir)
        shared[f"{service}_IMMUTABLE_CONFIG_DIR"] = str(pod.immutable_dir)
        shared[f"{service}_SECRET_DIR"] = str(pod.secret_dir)
    try:
        pod.start(
            "world",
            [str(BIN_DIR / "world-service")],
            # As in the pod: world listens on its Unix socket only, and hello calls it there.
            {**shared, "WORLD_LISTEN_SOCKET": str(work / "world.sock"), "WORLD_DATA_DIR": str(work / "data"),
             "WORLD_SHUTDOWN_DRAIN_MS": "0", "WORLD_LEASE_MS": str(LEASE_MS),
             # A secret also handed over in the environment, as a Secret's secretKeyRef would.
             "WORLD_MONGODB_URI_UNUSED": PLANTED_SECRET},
        )
        pod.start(
            "hello",
            [str(BIN_DIR / "hello-service")],
            {**shared, "HELLO_LISTEN": "127.0.0.1:8081", "HELLO_WORLD_URL": f"unix:{work / 'world.sock'}",
             "HELLO_SHUTDOWN_DRAIN_MS": "0",
             # Every test here is one client claiming names: lift the claim limit (the Rust
             # tests check it with small numbers).
             "HELLO_CLAIM_RATE_PER_MINUTE": "6000", "HELLO_CLAIM_BURST": "1000"},
        )
        pod.start(
            "nginx",
            ["nginx", "-p", f"{work / 'nginx'}/", "-c", str(ROOT / "deploy" / "nginx" / "nginx.conf"),
             "-e", "stderr", "-g", "daemon off;"],
            {},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if get("/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the pod was not ready through nginx within 30 s:\n" + pod.log_text())
        yield pod
    finally:
        pod.stop()
        shutil.rmtree(work, ignore_errors=True)


def start_second_nginx(pod: Pod, name: str, port: int, replace: dict[str, str] | None = None,
                       includes: dict[str, Path] | None = None) -> None:
    """Another nginx with the repo's config in front of the same pod, on 127.0.0.1:`port`: each of
    `replace`'s lines of nginx.conf (which must be there once) swapped, and `includes` replacing
    the included files of those names. Started here, stopped with the pod."""
    assert not port_is_taken(port), f"port {port} on 127.0.0.1 is in use: stop what uses it and retry"
    prefix = pod.work / name
    (prefix / "tmp").mkdir(parents=True)
    for include in (ROOT / "deploy" / "nginx").glob("*.conf"):
        shutil.copy(include, prefix / include.name)
    for include, source in (includes or {}).items():
        shutil.copy(source, prefix / include)
    conf = (prefix / "nginx.conf").read_text()
    for old, new in {"listen 8080;": f"listen 127.0.0.1:{port};", **(replace or {})}.items():
        assert conf.count(old) == 1, f"deploy/nginx/nginx.conf changed: expected one {old!r}"
        conf = conf.replace(old, new)
    (prefix / "nginx.conf").write_text(conf)
    shutil.copytree(ROOT / "frontend", prefix / "html")
    pod.start(name, ["nginx", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e", "stderr",
                     "-g", "daemon off;"], {})
    deadline = time.monotonic() + 15
    while not port_is_taken(port):
        assert time.monotonic() < deadline, f"{name} did not start:\n" + pod.log_text()
        time.sleep(0.05)


@pytest.fixture(scope="session")
def public_nginx(pod):
    """nginx with the repo's config, its hidden-paths.conf replaced by the `public` component's
    (the file the component mounts over it), on 127.0.0.1:8090 in front of the same pod."""
    start_second_nginx(pod, "public-nginx", 8090, includes={
        "hidden-paths.conf": ROOT / "deploy" / "components" / "public" / "hidden-paths.conf"})
    return PUBLIC_URL


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
    page.goto(BASE_URL + "/")
    yield page
    context.close()
    assert not [error for error in errors if "Content Security Policy" in error], errors


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """docs/screenshots when UPDATE_SCREENSHOTS=1 (to refresh the README's pictures), else target/."""
    directory = ROOT / ("docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else "target/screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
