"""A small cluster on one machine, shaped like the Kubernetes manifests.

- One store: nx-27017 (a MongoDB wire-protocol server) on a file, so that a kill -9 loses nothing
  it acknowledged, on 127.0.0.1.
- N pods. Pod k lives on its own loopback address 127.0.0.(k+2): nginx (deploy/nginx/nginx.conf)
  on :8080, hello-service on :8081 and world-service on :8082, exactly as in the pod, where the
  three containers share localhost. The pod's nginx.conf is the real file with only its two
  addresses rewritten (listen and upstream): one pod per address instead of one per network
  namespace.
- A load balancer: nginx on 127.0.0.1, playing the Service. Like the endpoints controller, a
  thread probes each pod's readiness (GET /readyz through the pod's nginx, which asks hello, which
  asks world, which pings the store) and keeps only ready pods in the upstream; a terminating pod
  leaves the upstream at once. When no pod is ready the balancer answers 503 problem+json with
  Retry-After, as ingress-nginx does with no endpoints.

Everything is started here and stopped by the PID it was started with; nginx runs in its own
process group so that a "container kill" takes its workers too.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"

# Scaled-down probe timings: the manifests probe every 5 s (failureThreshold 2); here every 0.25 s.
PROBE_PERIOD_S = 0.25
PROBE_FAILURE_THRESHOLD = 2
# The manifests' preStop sleep (5 s), scaled down: time for the endpoints change to reach the balancer.
PRE_STOP_S = 1.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def http_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """The status of one GET, or None when nothing answered."""
    try:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.request("GET", path)
        status = connection.getresponse().status
        connection.close()
        return status
    except (OSError, http.client.HTTPException):
        return None


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Process:
    """One started process, its log, and the signals a kubelet would send it."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path, cwd: Path | None = None):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.command,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.cwd,
            start_new_session=True,  # its own process group: nginx's workers die with their master
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.running:
            assert self.popen is not None
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """kill -9, as when a container crashes: the process and everything it started."""
        self.signal_group(signal.SIGKILL)
        self.wait(10)

    def wait(self, timeout: float) -> None:
        if self.popen is None:
            return
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(timeout=10)
            raise RuntimeError(f"{self.name} did not exit within {timeout:.0f} s of its stop signal")
        finally:
            # Reap nginx workers left in the group, if any.
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@dataclass(frozen=True)
class Release:
    """What a pod runs: one release's binaries, and its pod nginx.conf and page."""

    name: str
    # A checkout of the release: its deploy/nginx and frontend.
    root: Path
    bin_dir: Path


@dataclass
class Pod:
    index: int
    address: str
    release: Release
    hello: Process
    world: Process
    nginx: Process
    terminating: bool = False
    ready: bool = False
    failures: int = 0

    @property
    def name(self) -> str:
        return f"pod-{self.index}"

    def containers(self) -> list[Process]:
        return [self.nginx, self.hello, self.world]


@dataclass
class Cluster:
    work: Path
    # What new pods run (a rolling update changes it).
    release: Release
    nx: Path
    pod_count: int = 3
    store_port: int = 0
    lb_port: int = 0
    pods: list[Pod] = field(default_factory=list)
    hello_env: dict[str, str] = field(default_factory=dict)
    # Extra hello-service settings for single pods, by pod index.
    pod_hello_env: dict[int, dict[str, str]] = field(default_factory=dict)
    # nginx include files that replace the repository's for single pods, by pod index.
    pod_nginx_includes: dict[int, dict[str, str]] = field(default_factory=dict)
    world_env: dict[str, str] = field(default_factory=dict)
    _store: Process | None = None
    _lb: Process | None = None
    _lb_members: tuple[str, ...] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Held while the balancer's members are worked out, written and reloaded: the controller
    # thread and a terminating pod both sync, and an interleaving of the two could leave a stale
    # member list in the file while _lb_members says otherwise.
    _sync_lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    # ---- the store -------------------------------------------------------------------------
    def start_store(self) -> None:
        if self._store is None:
            self.store_port = free_port()
            self._store = Process(
                "store",
                [str(self.nx), "--db", str(self.work / "store.db"), "--host", "127.0.0.1", "--port",
                 str(self.store_port), "--log-file", str(self.work / "logs" / "nx.log"),
                 "--pid-file", str(self.work / "nx.pid")],
                {}, self.work / "logs",
            )
        self._store.start()
        wait_until(lambda: _port_open("127.0.0.1", self.store_port), 30, "the store (nx-27017) to listen")

    def kill_store(self) -> None:
        assert self._store is not None
        self._store.kill()

    def stop_store(self) -> None:
        assert self._store is not None
        self._store.signal_group(signal.SIGTERM)
        self._store.wait(15)

    # ---- pods ------------------------------------------------------------------------------
    def _make_pod(self, index: int, release: Release) -> Pod:
        """Pod `index` as `release` makes it (its files written afresh; the mounted folders kept)."""
        address = f"127.0.0.{index + 2}"
        pod_dir = self.work / f"pod-{index}"
        prefix = pod_dir / "nginx"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        os.chmod(prefix / "tmp", 0o755)  # nginx as root runs its workers as nobody
        nginx_dir = release.root / "deploy" / "nginx"
        for include in nginx_dir.glob("*.conf"):
            if include.name != "nginx.conf":
                shutil.copy(include, prefix / include.name)
        for name, text in self.pod_nginx_includes.get(index, {}).items():
            (prefix / name).write_text(text)
        html = prefix / "html"
        # A copy: nginx's unprivileged workers may not be allowed into the repository's folder.
        shutil.rmtree(html, ignore_errors=True)
        shutil.copytree(release.root / "frontend", html)
        (prefix / "nginx.conf").write_text(pod_nginx_conf(address, nginx_dir / "nginx.conf"))
        for mounted in ("config", "config-immutable", "secret"):
            (pod_dir / mounted).mkdir(exist_ok=True)
        logs = self.work / "logs"
        name = f"pod-{index}"

        def mounted(prefix: str) -> dict[str, str]:
            return {f"{prefix}_CONFIG_DIR": str(pod_dir / "config"),
                    f"{prefix}_IMMUTABLE_CONFIG_DIR": str(pod_dir / "config-immutable"),
                    f"{prefix}_SECRET_DIR": str(pod_dir / "secret")}

        common = {"POD_NAME": name, "POD_IP": address, "NODE_NAME": "scale-node", "POD_NAMESPACE": "scale"}
        world = Process(
            f"{name}-world",
            [str(release.bin_dir / "world-service")],
            {**common, "WORLD_LISTEN": f"{address}:8082",
             "WORLD_MONGODB_URI": f"mongodb://127.0.0.1:{self.store_port}/?directConnection=true",
             "WORLD_MONGODB_DATABASE": "scale", **mounted("WORLD"), **self.world_env},
            logs,
        )
        hello = Process(
            f"{name}-hello",
            [str(release.bin_dir / "hello-service")],
            {**common, "HELLO_LISTEN": f"{address}:8081", "HELLO_WORLD_URL": f"http://{address}:8082",
             **mounted("HELLO"), **self.hello_env, **self.pod_hello_env.get(index, {})},
            logs,
        )
        nginx = Process(
            f"{name}-nginx",
            ["nginx", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e", "stderr", "-g", "daemon off;"],
            {}, logs,
        )
        return Pod(index, address, release, hello, world, nginx)

    def start_pod(self, pod: Pod) -> None:
        """Starts the pod's three containers and waits until it is ready (world first, as probes would)."""
        for container in (pod.world, pod.hello, pod.nginx):
            if not container.running:
                container.start()
        wait_until(lambda: http_status(pod.address, 8080, "/readyz") == 200, 30, f"{pod.name} to be ready")
        with self._lock:
            pod.terminating = False

    def terminate_pod(self, pod: Pod) -> None:
        """What Kubernetes does when a pod is deleted: out of the Service first, the preStop sleep,
        then SIGTERM to hello and world (they drain) and SIGQUIT to nginx (its image's STOPSIGNAL:
        finish what is in flight), and wait for all three to exit."""
        with self._lock:
            pod.terminating = True
            pod.ready = False
        self._sync_balancer()
        time.sleep(PRE_STOP_S)
        pod.hello.signal_group(signal.SIGTERM)
        pod.world.signal_group(signal.SIGTERM)
        pod.nginx.signal_group(signal.SIGQUIT)
        for container in pod.containers():
            container.wait(30)

    def replace_pod(self, pod: Pod, release: Release) -> Pod:
        """A rolling update's step: `pod` terminated (as terminate_pod), and a pod of `release`
        started in its place, on the same address, with the same mounted folders."""
        self.terminate_pod(pod)
        new = self._make_pod(pod.index, release)
        new.terminating = True  # out of the balancer until it is ready and probed
        with self._lock:
            self.pods[self.pods.index(pod)] = new
        self.start_pod(new)
        return new

    def restart_container(self, container: Process, delay: float = 1.0) -> None:
        """The kubelet restarting a crashed container after a short back-off."""
        time.sleep(delay)
        container.start()

    # ---- the balancer and its endpoints controller -----------------------------------------
    def start(self) -> None:
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        for index in range(self.pod_count):
            for port in (8080, 8081, 8082):
                if _port_open(f"127.0.0.{index + 2}", port):
                    raise RuntimeError(f"127.0.0.{index + 2}:{port} is taken: is another cluster "
                                       "(tests/scale or tests/hostile) still running?")
        self.start_store()
        self.pods = [self._make_pod(index, self.release) for index in range(self.pod_count)]
        for pod in self.pods:
            self.start_pod(pod)
            pod.ready = True
        self.lb_port = free_port()
        lb_dir = self.work / "lb"
        (lb_dir / "tmp").mkdir(parents=True, exist_ok=True)
        os.chmod(lb_dir / "tmp", 0o755)
        (lb_dir / "nginx.conf").write_text(balancer_conf(self.lb_port))
        self._sync_balancer()
        self._lb = Process("balancer", ["nginx", "-p", f"{lb_dir}/", "-c", str(lb_dir / "nginx.conf"),
                                        "-e", "stderr", "-g", "daemon off;"], {}, self.work / "logs")
        self._lb.start()
        wait_until(lambda: http_status("127.0.0.1", self.lb_port, "/readyz") == 200, 15, "the balancer")
        self._controller = threading.Thread(target=self._control_endpoints, name="endpoints", daemon=True)
        self._controller.start()

    def _control_endpoints(self) -> None:
        while not self._stopping.is_set():
            for pod in self.pods:
                if pod.terminating:
                    continue
                ok = http_status(pod.address, 8080, "/readyz", timeout=PROBE_PERIOD_S * 2) == 200
                with self._lock:
                    if ok:
                        pod.failures = 0
                        pod.ready = not pod.terminating
                    else:
                        pod.failures += 1
                        if pod.failures >= PROBE_FAILURE_THRESHOLD:
                            pod.ready = False
            self._sync_balancer()
            self._stopping.wait(PROBE_PERIOD_S)

    def ready_pods(self) -> list[Pod]:
        with self._lock:
            return [pod for pod in self.pods if pod.ready and not pod.terminating]

    def _write_upstream(self, members: tuple[str, ...]) -> None:
        lines = [f"server {address}:8080 max_fails=0;" for address in members]
        if not lines:
            # No endpoints: a server that refuses, so that the balancer answers its own 503.
            lines = ["server 127.0.0.1:9 max_fails=0;"]
        # Written aside and renamed into place: a reload still reading the last version must
        # never see half a file (nginx would refuse it and keep serving the old members).
        staged = self.work / "lb" / "upstream.conf.new"
        staged.write_text("\n".join(lines) + "\n")
        os.replace(staged, self.work / "lb" / "upstream.conf")

    def _sync_balancer(self) -> None:
        """Writes the ready pods into the balancer's upstream and reloads it, when they changed."""
        with self._sync_lock:
            wanted = tuple(pod.address for pod in self.ready_pods())
            if wanted == self._lb_members:
                return
            self._write_upstream(wanted)
            self._lb_members = wanted
            if self._lb is not None and self._lb.running:
                assert self._lb.popen is not None
                os.kill(self._lb.popen.pid, signal.SIGHUP)  # graceful reload: in-flight requests finish

    def wait_all_ready(self, timeout: float = 60) -> None:
        wait_until(lambda: len(self.ready_pods()) == len(self.pods) and self._lb_members is not None
                   and len(self._lb_members) == len(self.pods), timeout, "every pod to be ready in the balancer")
        time.sleep(0.3)  # the reload's new workers take over

    def stop(self) -> None:
        self._stopping.set()
        if self._controller is not None:
            self._controller.join(timeout=5)
        for process in [self._lb] + [c for pod in self.pods for c in pod.containers()] + [self._store]:
            if process is not None and process.running:
                process.signal_group(signal.SIGTERM)
        for process in [self._lb] + [c for pod in self.pods for c in pod.containers()] + [self._store]:
            if process is not None:
                try:
                    process.wait(20)
                except RuntimeError:
                    pass


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def pod_nginx_conf(address: str, conf: Path = NGINX_CONF) -> str:
    """A pod's nginx.conf (deploy/nginx/nginx.conf) for a pod on `address`: only the listen address
    and hello's upstream change."""
    text = conf.read_text()
    for old, new in (("listen 8080;", f"listen {address}:8080;"),
                     ("server 127.0.0.1:8081;", f"server {address}:8081;")):
        if text.count(old) != 1:
            raise RuntimeError(f"deploy/nginx/nginx.conf changed: expected exactly one '{old}'")
        text = text.replace(old, new)
    return text


def proxy_nginx_head(comment: str, connections: int) -> str:
    """The start of a proxy-only nginx.conf whose every writable path is under the prefix's tmp/,
    up to the open `http {` block: a stand-in for the proxies in front of a pod."""
    return f"""# {comment}
worker_processes 1;
pid tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
"""


def balancer_conf(port: int) -> str:
    return proxy_nginx_head("The Service in front of the pods (generated by tests/scale/cluster.py).", 4096) + f"""\
    client_max_body_size 32m;
    upstream pods {{
        include upstream.conf;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://pods;
            # A new connection per request, as kube-proxy balances connections, not requests.
            proxy_http_version 1.0;
            proxy_set_header Host $host;
            proxy_set_header X-Request-Id $http_x_request_id;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
            proxy_send_timeout 30s;
            # Only a refused connection moves on to the next pod: nothing was sent yet.
            proxy_next_upstream error;
        }}
        error_page 502 503 504 = @no_endpoints;
        location @no_endpoints {{
            default_type application/problem+json;
            add_header Retry-After 1 always;
            add_header X-Served-By balancer always;
            return 503 '{{"type":"/problems/unavailable","title":"Service unavailable","status":503,"detail":"no pod of the Service answered; retry shortly, with the same Idempotency-Key for a POST","retry_after":1}}';
        }}
    }}
}}
"""
