"""A pod on this machine, wired as the Kubernetes pod is: nginx (deploy/nginx/nginx.conf) ->
hello-service -> world-service -> store. Every suite that runs the services starts them here, so
this is the one place that says how the three are wired:

- world-service listens on its Unix socket only (`WORLD_LISTEN_SOCKET=<work>/world.sock`) and
  hello-service calls it there (`HELLO_WORLD_URL=unix:<work>/world.sock`), as in the pod. A TCP
  port for world (`WORLD_LISTEN`) only where a caller needs one: `world_port=`, or a release
  whose world has no socket (0.1.0, in the rolling update).
- nginx runs the pod's own nginx.conf, rewritten only to listen on the pod's loopback address
  and to find hello there (scripts/nginx-loopback.sh); `nginx_port=None` leaves nginx out.
- The store: the embedded one in `<work>/data`, or MongoDB (`store=`, nx-27017) shared by pods.
- The mounted folders the manifests give both services: `<work>/config`, `config-immutable`
  and `secret`.

Every process is started here, in its own process group, and stopped by its PID; logs are in
`<work>/logs` (or `logs=`), one file per process.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support import nginx
from tests.support.ports import is_listening
from tests.support.processes import Process, wait_until
from tests.support.store import MongoStore

ROOT = Path(__file__).resolve().parents[2]
# The binaries the suites run: scripts/test.sh builds them (debug) first.
BIN_DIR = Path(os.environ.get("BIN_DIR", ROOT / "target" / "debug"))


@dataclass(frozen=True)
class Release:
    """What a pod runs: one release's binaries, and its nginx.conf and page (from its checkout)."""

    name: str
    root: Path
    bin_dir: Path
    # 0.1.0's world cannot listen on a Unix socket: its hello reaches it over TCP.
    world_socket: bool = True


def this_checkout(bin_dir: Path = BIN_DIR) -> Release:
    for binary in ("hello-service", "world-service"):
        if not (bin_dir / binary).exists():
            raise RuntimeError(f"{bin_dir / binary} is missing: run cargo build --workspace first")
    return Release("this checkout", ROOT, bin_dir)


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of one GET, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


class Pod:
    """One pod in `work` (its folder), on `address`: nginx on `nginx_port` (None: no nginx), hello
    on `hello_port`, world on its socket (and on `world_port` when given). Settings go on top of
    the wiring: `env` for both services, then `hello_env` or `world_env`."""

    def __init__(self, work: Path, *, name: str = "pod", address: str = "127.0.0.1",
                 release: Release | None = None, nginx_port: int | None = 8080, hello_port: int = 8081,
                 world_port: int | None = None, store: MongoStore | None = None, database: str = "hello",
                 env: dict[str, str] | None = None, hello_env: dict[str, str] | None = None,
                 world_env: dict[str, str] | None = None, nginx_includes: dict[str, str | Path] | None = None,
                 nginx_conf: Path | None = None, logs: Path | None = None):
        self.work, self.name, self.address = work, name, address
        self.release = release or this_checkout()
        self.nginx_port, self.hello_port = nginx_port, hello_port
        self.world_port = world_port or (None if self.release.world_socket else 8082)
        self.store, self.database = store, database
        self.env, self.hello_env, self.world_env = env or {}, hello_env or {}, world_env or {}
        self.nginx_includes = nginx_includes or {}
        # Another nginx.conf than the release's (bench/profile.py compares configurations).
        self.nginx_conf = nginx_conf
        self.logs = logs or work / "logs"
        self.config_dir = work / "config"
        self.immutable_dir = work / "config-immutable"
        self.secret_dir = work / "secret"
        self.world_socket = work / "world.sock"
        self.world = self._world_process()
        self.hello = self._hello_process()
        self.nginx = Process(f"{name}-nginx", nginx.command(work / "nginx"), {}, self.logs) if nginx_port else None
        # Processes started beside the pod's own (another nginx in front of it), stopped with it.
        self.extras: list[Process] = []

    # ---- where things are ----------------------------------------------------------------
    @property
    def url(self) -> str:
        """The pod's front door: its nginx."""
        assert self.nginx_port, f"{self.name} has no nginx"
        return f"http://{self.address}:{self.nginx_port}"

    @property
    def hello_url(self) -> str:
        return f"http://{self.address}:{self.hello_port}"

    @property
    def world_url(self) -> str:
        """world's TCP address, for callers that need one (`world_port=`)."""
        assert self.world_port, f"{self.name}'s world listens on its Unix socket only"
        return f"http://{self.address}:{self.world_port}"

    def containers(self) -> list[Process]:
        return [process for process in (self.nginx, self.hello, self.world) if process is not None]

    def pids(self) -> list[int]:
        return [process.pid for process in self.containers() + self.extras if process.popen is not None]

    # ---- the wiring ----------------------------------------------------------------------
    def _common_env(self, service: str) -> dict[str, str]:
        return {"POD_NAME": self.name, "POD_IP": self.address, "NODE_NAME": "test-node",
                f"{service}_CONFIG_DIR": str(self.config_dir),
                f"{service}_IMMUTABLE_CONFIG_DIR": str(self.immutable_dir),
                f"{service}_SECRET_DIR": str(self.secret_dir), **self.env}

    def _world_process(self, bin_dir: Path | None = None, **overrides: str) -> Process:
        env = self._common_env("WORLD")
        if self.release.world_socket:
            env["WORLD_LISTEN_SOCKET"] = str(self.world_socket)
        if self.world_port:
            env["WORLD_LISTEN"] = f"{self.address}:{self.world_port}"
        if self.store:
            env |= {"WORLD_MONGODB_URI": self.store.uri(), "WORLD_MONGODB_DATABASE": self.database}
        else:
            env["WORLD_DATA_DIR"] = str(self.work / "data")
        return Process(f"{self.name}-world", [str((bin_dir or self.release.bin_dir) / "world-service")],
                       {**env, **self.world_env, **overrides}, self.logs)

    def _hello_process(self, bin_dir: Path | None = None, **overrides: str) -> Process:
        world = f"unix:{self.world_socket}" if self.release.world_socket else self.world_url
        env = {**self._common_env("HELLO"), "HELLO_LISTEN": f"{self.address}:{self.hello_port}",
               "HELLO_WORLD_URL": world}
        return Process(f"{self.name}-hello", [str((bin_dir or self.release.bin_dir) / "hello-service")],
                       {**env, **self.hello_env, **overrides}, self.logs)

    def prepare(self) -> None:
        """Writes the pod's files (its folders, nginx's prefix); start() does it first."""
        self.logs.mkdir(parents=True, exist_ok=True)
        for folder in (self.config_dir, self.immutable_dir, self.secret_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if self.nginx_port:
            # nginx's workers run as an unprivileged user when the master is root: let them in.
            self.work.chmod(0o755)
            nginx.prepare(self.work / "nginx", f"{self.address}:{self.nginx_port}",
                          f"{self.address}:{self.hello_port}", self.release.root, self.nginx_includes,
                          self.nginx_conf)

    # ---- starting and stopping -----------------------------------------------------------
    def start(self, timeout: float = 30) -> Pod:
        """Starts what is not running (world first, as the probes would have it) and waits until
        the pod is ready."""
        self.prepare()
        for process in (self.world, self.hello, self.nginx):
            if process is not None and not process.running:
                process.start()
        self.wait_ready(timeout)
        return self

    def ready(self) -> bool:
        """/readyz answers 200 through the pod's front door (nginx -> hello -> world -> store)."""
        return http_status(f"{self.url if self.nginx_port else self.hello_url}/readyz") == 200

    def wait_ready(self, timeout: float = 30) -> None:
        try:
            wait_until(self.ready, timeout, f"{self.name} to be ready")
        except RuntimeError as error:
            raise RuntimeError(f"{error}; its logs:\n{self.log_text()[-6000:]}") from None

    def restart(self, container: str, bin_dir: Path | None = None, **env: str) -> Process:
        """Stops `container` ("world" or "hello") and starts it again, from `bin_dir`'s binaries
        and with `env` over the pod's settings, for this run of it only. Returns it started, not
        yet waited for (a caller may time its start)."""
        make = {"world": self._world_process, "hello": self._hello_process}[container]
        getattr(self, container).stop()
        process = make(bin_dir, **env)
        setattr(self, container, process)
        return process.start()

    def terminate(self) -> None:
        """What a kubelet does to a deleted pod's containers: SIGTERM to hello and world (they
        drain), SIGQUIT to nginx (its image's STOPSIGNAL: finish what is in flight), then waits
        for all three to exit."""
        self.hello.signal_group(signal.SIGTERM)
        self.world.signal_group(signal.SIGTERM)
        if self.nginx:
            self.nginx.signal_group(signal.SIGQUIT)
        for process in self.containers():
            process.wait(30)

    def stop(self) -> None:
        """Stops everything started here (SIGTERM, then SIGKILL after 20 s)."""
        processes = [*self.extras, *self.containers()]
        for process in processes:
            process.signal_group(signal.SIGTERM)
        for process in processes:
            process.stop()

    def start_nginx(self, name: str, port: int, hello: str | None = None,
                    includes: dict[str, str | Path] | None = None) -> Process:
        """Another nginx with the pod's configuration on this pod's address:`port`, in front of
        `hello` (address:port; by default this pod's hello-service), `includes` replacing the
        included files of those names. Stopped with the pod."""
        assert not is_listening(self.address, port), f"{self.address}:{port} is in use: stop what uses it"
        prefix = self.work / name
        nginx.prepare(prefix, f"{self.address}:{port}", hello or f"{self.address}:{self.hello_port}",
                      self.release.root, includes, self.nginx_conf)
        process = Process(name, nginx.command(prefix), {}, self.logs).start()
        self.extras.append(process)
        wait_until(lambda: is_listening(self.address, port), 15, f"{name} to listen")
        return process

    # ---- talking to it --------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        """(status, headers (case-insensitive), body text) of one request through the pod's nginx."""
        prepared = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(prepared, timeout=10) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()

    def get(self, path: str, headers: dict[str, str] | None = None):
        return self.request("GET", path, headers=headers)

    # ---- what the processes wrote ---------------------------------------------------------
    def log_text(self) -> str:
        return "\n".join(process.log_path.read_text(errors="replace")
                         for process in [*self.containers(), *self.extras] if process.log_path.exists())

    def log_text_once(self, written: str, timeout: float = 15.0) -> str:
        """All the logs, once `written` is in them. nginx buffers its access log (64 KiB or one
        second), so its lines arrive in batches: a check of what the logs hold waits for the line
        of the last request it cares about, which brings every line before it."""
        deadline = time.monotonic() + timeout
        while written not in (logs := self.log_text()):
            assert time.monotonic() < deadline, f"{written!r} did not reach the logs within {timeout} s"
            time.sleep(0.05)
        return logs
