"""A small cluster on one machine, shaped like the Kubernetes manifests, built from pods of
tests/support/pod.py.

- One store: nx-27017 (tests/support/store.py), shared by every pod, as MongoDB is.
- N pods. Pod k lives on its own loopback address 127.0.0.(k+2), its nginx on :8080 and
  hello-service on :8081 (world on its Unix socket): one pod per address instead of one per
  network namespace.
- A load balancer: nginx on 127.0.0.1, playing the Service. Like the endpoints controller, a
  thread probes each pod's readiness (GET /readyz through the pod's nginx, which asks hello, which
  asks world, which pings the store) and keeps only ready pods in the upstream; a terminating pod
  leaves the upstream at once. When no pod is ready the balancer answers 503 problem+json with
  Retry-After, as ingress-nginx does with no endpoints.

Everything is started here and stopped by the PID it was started with.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import nginx
from tests.support.pod import Pod, Release, http_status
from tests.support.ports import free_port, is_listening
from tests.support.processes import Process, wait_until
from tests.support.store import NX, MongoStore

# Scaled-down probe timings: the manifests probe every 5 s (failureThreshold 2); here every 0.25 s.
PROBE_PERIOD_S = 0.25
PROBE_FAILURE_THRESHOLD = 2
# The manifests' preStop sleep (5 s), scaled down: time for the endpoints change to reach the balancer.
PRE_STOP_S = 1.0


@dataclass
class Endpoint:
    """What the endpoints controller knows of one pod."""

    ready: bool = False
    terminating: bool = False
    failures: int = 0


@dataclass
class Cluster:
    work: Path
    # What new pods run (a rolling update changes it).
    release: Release
    nx: Path = NX
    pod_count: int = 3
    hello_env: dict[str, str] = field(default_factory=dict)
    world_env: dict[str, str] = field(default_factory=dict)
    # Extra hello-service settings for single pods, by pod index.
    pod_hello_env: dict[int, dict[str, str]] = field(default_factory=dict)
    # nginx include files that replace the repository's for single pods, by pod index.
    pod_nginx_includes: dict[int, dict[str, str]] = field(default_factory=dict)
    # world's TCP port on each pod's address, for reading its /metrics (None: its socket only).
    world_port: int | None = None
    pods: list[Pod] = field(default_factory=list)
    store: MongoStore | None = None
    lb_port: int = 0
    _endpoints: dict[Pod, Endpoint] = field(default_factory=dict)
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
        self.store.start()

    def kill_store(self) -> None:
        self.store.kill()

    def stop_store(self) -> None:
        self.store.stop()

    # ---- pods ------------------------------------------------------------------------------
    def _make_pod(self, index: int, release: Release) -> Pod:
        """Pod `index` as `release` makes it, in its own folder (the mounted folders kept across
        replacements)."""
        return Pod(self.work / f"pod-{index}", name=f"pod-{index}", address=f"127.0.0.{index + 2}",
                   release=release, store=self.store, database="scale", world_port=self.world_port,
                   env={"NODE_NAME": "scale-node", "POD_NAMESPACE": "scale"},
                   hello_env={**self.hello_env, **self.pod_hello_env.get(index, {})}, world_env=self.world_env,
                   nginx_includes=self.pod_nginx_includes.get(index), logs=self.work / "logs")

    def start_pod(self, pod: Pod) -> None:
        """Starts the pod's containers that are not running and waits until it is ready."""
        pod.start()
        with self._lock:
            self._endpoints[pod].terminating = False

    def terminate_pod(self, pod: Pod) -> None:
        """What Kubernetes does when a pod is deleted: out of the Service first, the preStop sleep,
        then the containers' stop signals (Pod.terminate)."""
        with self._lock:
            self._endpoints[pod].terminating = True
            self._endpoints[pod].ready = False
        self._sync_balancer()
        time.sleep(PRE_STOP_S)
        pod.terminate()

    def replace_pod(self, pod: Pod, release: Release) -> Pod:
        """A rolling update's step: `pod` terminated (as terminate_pod), and a pod of `release`
        started in its place, on the same address, with the same mounted folders."""
        self.terminate_pod(pod)
        new = self._make_pod(self.pods.index(pod), release)
        with self._lock:
            # Out of the balancer until it is ready and probed.
            self._endpoints[new] = Endpoint(terminating=True)
            self.pods[self.pods.index(pod)] = new
            del self._endpoints[pod]
        self.start_pod(new)
        return new

    def restart_container(self, container: Process, delay: float = 1.0) -> None:
        """The kubelet restarting a crashed container after a short back-off."""
        time.sleep(delay)
        container.start()

    # ---- the balancer and its endpoints controller -----------------------------------------
    def start(self) -> None:
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        self.work.chmod(0o755)  # the pods' nginx workers (an unprivileged user) pass through it
        for index in range(self.pod_count):
            for port in (8080, 8081):
                if is_listening(f"127.0.0.{index + 2}", port):
                    raise RuntimeError(f"127.0.0.{index + 2}:{port} is taken: is another cluster "
                                       "(tests/scale or tests/hostile) still running?")
        self.store = MongoStore(self.work, self.nx)
        self.start_store()
        self.pods = [self._make_pod(index, self.release) for index in range(self.pod_count)]
        for pod in self.pods:
            self._endpoints[pod] = Endpoint()
            self.start_pod(pod)
            self._endpoints[pod].ready = True
        self.lb_port = free_port()
        lb_dir = self.work / "lb"
        (lb_dir / "tmp").mkdir(parents=True, exist_ok=True)
        os.chmod(lb_dir / "tmp", 0o755)
        (lb_dir / "nginx.conf").write_text(balancer_conf(self.lb_port))
        self._sync_balancer()
        self._lb = Process("balancer", nginx.command(lb_dir), {}, self.work / "logs").start()
        wait_until(lambda: http_status(f"http://127.0.0.1:{self.lb_port}/readyz") == 200, 15, "the balancer")
        self._controller = threading.Thread(target=self._control_endpoints, name="endpoints", daemon=True)
        self._controller.start()

    def _control_endpoints(self) -> None:
        while not self._stopping.is_set():
            for pod in list(self.pods):
                endpoint = self._endpoints.get(pod)
                if endpoint is None or endpoint.terminating:
                    continue
                ok = http_status(f"{pod.url}/readyz", timeout=PROBE_PERIOD_S * 2) == 200
                with self._lock:
                    if ok:
                        endpoint.failures = 0
                        endpoint.ready = not endpoint.terminating
                    else:
                        endpoint.failures += 1
                        if endpoint.failures >= PROBE_FAILURE_THRESHOLD:
                            endpoint.ready = False
            self._sync_balancer()
            self._stopping.wait(PROBE_PERIOD_S)

    def ready_pods(self) -> list[Pod]:
        with self._lock:
            return [pod for pod in self.pods
                    if (endpoint := self._endpoints.get(pod)) and endpoint.ready and not endpoint.terminating]

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
                os.kill(self._lb.pid, signal.SIGHUP)  # graceful reload: in-flight requests finish

    def wait_all_ready(self, timeout: float = 60) -> None:
        wait_until(lambda: len(self.ready_pods()) == len(self.pods) and self._lb_members is not None
                   and len(self._lb_members) == len(self.pods), timeout, "every pod to be ready in the balancer")
        time.sleep(0.3)  # the reload's new workers take over

    def stop(self) -> None:
        self._stopping.set()
        if self._controller is not None:
            self._controller.join(timeout=5)
        # Every process told at once, then each waited for: pods drain together, as in a cluster.
        processes = [self._lb, *[process for pod in self.pods for process in pod.extras + pod.containers()],
                     self.store.process if self.store else None]
        for process in processes:
            if process is not None:
                process.signal_group(signal.SIGTERM)
        for process in processes:
            if process is not None:
                process.stop()


def balancer_conf(port: int) -> str:
    return nginx.proxy_conf_head("The Service in front of the pods (tests/support/cluster.py).", 4096) + f"""\
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
