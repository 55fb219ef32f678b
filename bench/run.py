#!/usr/bin/env python3
"""Benchmark of the pod on this machine, against ceilings measured in the same run.

With wrk at 64 connections (two threads) for each target. Every ratio is against row 0, a bare
nginx (2 workers, no access log) serving a 1.4 KB static file: what nginx can do on this machine.
  0. the ceilings: bare nginx; the pod's nginx (deploy/nginx/nginx.conf, with its JSON access
     log) serving frontend/favicon.svg; one Rust hop (the pod's nginx -> hello /healthz); two
     hops (nginx -> hello /readyz -> a stand-in world answering a constant: no store work);
     and a bare actix-web handler returning a constant;
  1. GET and durable POST /hello/{name} through the whole pod (nginx -> hello -> world -> store),
     reliable read + confirm pairs (one hello each, from deep inboxes), and sends and reads as
     owners of claimed names with their tokens; then the same straight at hello-service, and
     world-service alone (its internal API); after each of these rows it prints both services'
     peak RSS so far and the most files (sockets included) each had open during the row;
then RSS of hello and world idle and under load, time from process start to /readyz 200, and the
image sizes when podman has built them.

Then, each on a fresh world-service:
  - scaling: the pod's rows again with 1,000,000 hellos stored across 100,000 names and 100,000
    names claimed, against the rows of 1. (which started from an empty store);
  - inbox depth: GET ?limit=1 from inboxes holding 1, about 100 and about 1000 hellos;
  - syncing off: the pod's POST and world's send with WORLD_STORE_SYNC=false, the same path
    without the fsync, against the durable rows;
  - traces off: the default build (traces compiled in, no OTEL_* set) against a build without
    the `traces` feature, alternating, twice each;
  - transport: hello -> world over loopback TCP against the Unix socket the pod uses,
    alternating, twice each.

Writes docs/benchmarks.md, docs/benchmarks.svg (throughput) and docs/benchmarks-latency.svg.

Run: python3 bench/run.py [--seconds N] [--quick]   (builds release binaries first; loopback
only; ~8 min; --quick runs parts 0 and 1 only, prints them and writes nothing)
"""

import argparse
import hashlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wrk import (  # noqa: E402
    CONNECTIONS, LUA_COUNTED, LUA_GET, LUA_OWNER_GET, LUA_OWNER_POST, LUA_POST, LUA_RELIABLE,
    OWNER_TOKEN_FORMAT, THREADS, WrkFailed, lua, owner_token, wrk, wrk_counted,
)

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release"
# The scaling store: this many hellos spread evenly over this many names (10 each).
STORED_HELLOS = 1_000_000
STORED_NAMES = 100_000
# Inbox depth -> how many inboxes of that depth to fill. Each depth row makes DEPTH_READS reads
# with ?limit=1 spread over its inboxes, so every inbox stays within 10% of its depth while read.
DEPTHS = {1: 20_000, 100: 2_000, 1000: 200}
DEPTH_READS = 20_000
# The reliable reads' inboxes: this many, each filled with this many hellos first (through world's
# API); each read takes one. A 10 s row at 64 connections takes far fewer than they hold.
RELIABLE_NAMES = 20_000
RELIABLE_DEPTH = 20
# Names claimed (each with its own token) in the big store of part 2, and in part 1's store, where
# the owners' rows send and read as them. Claims are looked up on every send and read.
CLAIMED_NAMES = 100_000
OWNERS_EMPTY_STORE = 1_000
# The size of the bare nginx's static file: a small page or API answer.
STATIC_BYTES = 1_400

WORLD = "http://127.0.0.1:8082"
HELLO = "http://127.0.0.1:8081"
POD = "http://127.0.0.1:8080"
STAND_IN_WORLD = "http://127.0.0.1:8090"
BARE_NGINX = "http://127.0.0.1:8091"
PORTS = (8080, 8081, 8082, 8090, 8091)
# What the services' images set (Dockerfile.hello, Dockerfile.world) that changes how they run.
IMAGE_ENV = {"MALLOC_ARENA_MAX": "2"}

# The bare nginx: two workers (one per core here), no access log, one static file.
BARE_NGINX_CONF = """
worker_processes 2;
pid tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {
        listen 127.0.0.1:8091;
        root html;
    }
}
"""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def fail(message: str) -> None:
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def wait_ready(url: str, timeout: float = 20.0) -> float:
    """Seconds until url answers 200, polling every millisecond."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.001)
    fail(f"{url} did not answer 200 within {timeout} s")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime are fields 14 and 15 of stat (1-based); after the ")" they are 12 and 13.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    """The processes `pid` started (nginx's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        path = task / "children"
        if path.exists():
            found += [int(child) for child in path.read_text().split()]
    return found


def cpu_seconds_by_name(processes: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU so far of each named group of processes, in seconds."""
    return {name: sum(map(cpu_seconds, pids)) for name, pids in processes.items()}


class OpenFiles:
    """The most files (sockets included) each process had open while it ran, sampled every 20 ms:
    a service that opens far more connections than there are clients shows here."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self.most = dict.fromkeys(processes, 0)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            for name, pid in self.processes.items():
                try:
                    self.most[name] = max(self.most[name], len(os.listdir(f"/proc/{pid}/fd")))
                except OSError:
                    pass

    def __enter__(self) -> "OpenFiles":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join()


def free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


class Processes:
    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=open(log, "ab"),
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)


def image_sizes() -> dict:
    if not shutil.which("podman"):
        return {}
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "deploy" / "podman" / "containers.conf")}
    sizes = {}
    for service in ("hello", "world"):
        result = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", f"localhost/{service}-service:local"],
                                capture_output=True, text=True, env=env)
        if result.returncode == 0:
            sizes[service] = int(result.stdout.strip()) / 1e6
    return sizes


def world_created(route: str) -> int:
    """POSTs to `route` (a route pattern) this world-service process answered 201, from its /metrics."""
    with urllib.request.urlopen(f"{WORLD}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("world_http_requests_total{") and f'route="{route}"' in line \
                and 'method="POST"' in line and 'status="201"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def world_claims_made() -> int:
    return world_created("/v1/names/{name}")


def world_sends_stored() -> int:
    return world_created("/v1/inboxes/{to}/hellos")


def svg_chart(title: str, rows: list[tuple[str, float]], path: Path, unit: str = "") -> None:
    width, bar_height, gap, label_width = 860, 24, 8, 390
    top = 40
    height = top + len(rows) * (bar_height + gap) + 20
    biggest = max(value for _, value in rows) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="12" y="24" font-size="15" font-weight="bold" fill="#1b1f33">{title}</text>',
    ]
    for index, (label, value) in enumerate(rows):
        y = top + index * (bar_height + gap)
        bar = (width - label_width - 110) * value / biggest
        text = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
        parts.append(f'<text x="12" y="{y + 17}" fill="#1b1f33">{label}</text>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{bar:.1f}" height="{bar_height}" rx="4" fill="#4f46e5"/>')
        parts.append(f'<text x="{label_width + bar + 8:.1f}" y="{y + 17}" fill="#1b1f33">{text}{unit}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


class Bench:
    """The processes of one run and the rows measured so far."""

    def __init__(self, work: Path, seconds: int) -> None:
        self.work = work
        self.seconds = seconds
        self.processes = Processes()
        self.results: dict[str, dict] = {}
        self.world: subprocess.Popen | None = None
        self.hello: subprocess.Popen | None = None
        self.worlds_started = 0
        self.peak = {"hello": 0, "world": 0}

    def start_world(self, binaries: Path = RELEASE, **env: str) -> float:
        """A world-service (from `binaries`) on a fresh data directory, listening on TCP and on
        its Unix socket, as in the pod; returns seconds until ready."""
        if self.world:
            self.processes.stop(self.world)
        self.worlds_started += 1
        self.world = self.processes.start(
            [str(binaries / "world-service")],
            {"RUST_LOG": "warn", "WORLD_DATA_DIR": str(self.work / f"data-{self.worlds_started}"),
             "WORLD_LISTEN_SOCKET": str(self.work / "world.sock"), "WORLD_SHUTDOWN_DRAIN_MS": "0",
             **IMAGE_ENV, **env},
            self.work / "world.log")
        ready = wait_ready(f"{WORLD}/readyz")
        if self.hello:
            # hello reconnects by itself; wait until it says the new world answers.
            wait_ready(f"{HELLO}/readyz")
        return ready

    def pod_pids(self, nginx_pid: int) -> dict[str, list[int]]:
        """The pod's processes by name: nginx (its master and workers), hello and world."""
        return {"nginx": [nginx_pid, *children(nginx_pid)], "hello": [self.hello.pid], "world": [self.world.pid]}

    def start_hello(self, binaries: Path = RELEASE, world: str | None = None, **env: str) -> float:
        """hello-service in front of `world` (by default world's Unix socket, as in the pod)."""
        world = world or f"unix:{self.work / 'world.sock'}"
        if self.hello:
            self.processes.stop(self.hello)
        self.hello = self.processes.start(
            [str(binaries / "hello-service")],
            {"RUST_LOG": "warn", "HELLO_LISTEN": "127.0.0.1:8081", "HELLO_RATE_LIMIT_PER_SECOND": "0",
             "HELLO_SHUTDOWN_DRAIN_MS": "0", "HELLO_WORLD_URL": world, **IMAGE_ENV, **env},
            self.work / "hello.log")
        return wait_ready(f"{HELLO}/readyz")

    def claim(self, prefix: str, names: int) -> None:
        """Claims names prefix0 .. prefix(names-1) through world's own API, name n with the hash of
        owner_token(n), as hello-service would."""
        hashes = [hashlib.sha256(owner_token(number).encode()).hexdigest() for number in range(names)]
        script = lua(self.work, f"counted_claims_{prefix}", LUA_COUNTED, prefix, METHOD="POST",
                     PATH="/v1/names/%s%d", BODY_FORMAT='{"token_sha256":"%s"}', HASHES=hashes,
                     NAMES=names, COUNT=names, DONE=str(self.work / "done"))
        before = world_claims_made()
        started = time.monotonic()
        row = wrk_counted(WORLD, script, self.work / "done")
        claimed = world_claims_made() - before
        print(f"  claimed {claimed:,} names in {time.monotonic() - started:.0f} s ({row['rps']:,.0f}/s)", flush=True)
        if claimed < names:
            fail(f"only {claimed:,} of {names:,} names were claimed (non-2xx: {row['non2xx']})")

    def measure(self, key: str, label: str, url: str, script: Path | None = None) -> dict:
        counted = script is not None and script.name.startswith("counted_")
        say(f"wrk {label}" + ("" if counted else f" ({self.seconds} s)"))
        pod_load = self.world is not None and self.worlds_started == 1
        watched = {"hello": self.hello.pid, "world": self.world.pid} if pod_load else {}
        with OpenFiles(watched) as open_files:
            if counted:
                row = {"label": label, **wrk_counted(url, script, self.work / "done")}
            else:
                row = {"label": label, **wrk(url, self.seconds, script)}
        self.results[key] = row
        if pod_load:
            # The RSS goal is about the rows of the first world: the pod's own load.
            self.peak = {"hello": max(self.peak["hello"], rss_kib(self.hello.pid, "VmHWM")),
                         "world": max(self.peak["world"], rss_kib(self.world.pid, "VmHWM"))}
        peak = ""
        if pod_load:
            peak = (f"  RSS peak so far: hello {self.peak['hello'] / 1024:.1f}, world {self.peak['world'] / 1024:.1f} MiB;"
                    f" open files at most: hello {open_files.most['hello']}, world {open_files.most['world']}")
        print(f"  {row['rps']:>10,.0f} req/s  p50 {row['p50']:.2f} ms  p99 {row['p99']:.2f} ms  "
              f"non-2xx {row['non2xx']}  requests {row['requests']:,}{peak}", flush=True)
        if script is not None and script.read_text().find("confirmed %d") >= 0 and row["pairs_per_s"] is None:
            fail(f"{label}: wrk printed no 'confirmed N' line (the reliable-read script's count)")
        if row["non2xx"] or row["socket_errors"]:
            fail(f"{label}: {row['non2xx']} non-2xx answers, socket errors: {row['socket_errors'] or 'none'}")
        return row

    def fill(self, name: str, prefix: str, names: int, count: int) -> None:
        """Stores exactly `count` hellos (plus at most one per connection) over `names` names."""
        script = lua(self.work, f"counted_{name}", LUA_COUNTED, prefix, '{"from":"filler"}',
                     METHOD="POST", PATH="/v1/inboxes/%s%d/hellos", NAMES=names, COUNT=count,
                     DONE=str(self.work / "done"))
        before = world_sends_stored()
        started = time.monotonic()
        row = wrk_counted(WORLD, script, self.work / "done")
        stored = world_sends_stored() - before
        print(f"  stored {stored:,} hellos over {names:,} names in {time.monotonic() - started:.0f} s "
              f"({row['rps']:,.0f}/s)", flush=True)
        if stored < count:
            fail(f"filling {name}: only {stored:,} of {count:,} hellos were stored (non-2xx: {row['non2xx']})")


def table_row(result: dict) -> str:
    return (f"| {result['label']} | {result['rps']:,.0f} | {result['p50']:.2f} | {result['p99']:.2f} | "
            f"{result['requests']:,} |")


def goal_table(results: dict, peak: dict, big_store: bool) -> list[str]:
    """Issue 17's goals: each measured value beside its goal, and whether it is met. Ratios have
    three decimals, so that one just below its goal does not print as the goal itself."""
    bare = results["bare_static"]["rps"]
    rows: list[tuple[str, str, str, bool | None]] = []
    for key, what in (("static", "pod's nginx, static file"), ("one_hop", "one hop (nginx -> hello)"),
                      ("two_hop", "two hops (nginx -> hello -> world, no store)")):
        rows.append((f"ceiling: {what} / bare nginx", f"{results[key]['rps'] / bare:.3f}", "", None))
    for key, what in (("pod_get", "pod GET"), ("pod_post", "pod durable POST")):
        value = results[key]["rps"] / bare
        rows.append((f"{what} / bare nginx", f"{value:.3f}", "≥ 0.25", value >= 0.25))
    pairs = results["pod_reliable"]["pairs_per_s"]
    rows.append((f"reliable read + confirm pairs ({pairs:,.0f}/s) / bare nginx", f"{pairs / bare:.3f}", "≥ 0.15",
                 pairs / bare >= 0.15))
    for key in ("pod_get", "pod_post", "owner_get", "owner_post"):
        p99 = results[key]["p99"]
        rows.append((f"p99, {results[key]['label'][3:]}", f"{p99:.2f} ms", "≤ 10 ms", p99 <= 10))
    for service in ("hello", "world"):
        mib = peak[service] / 1024
        rows.append((f"{service}-service RSS peak under load", f"{mib:.1f} MiB", "< 16 MiB", mib < 16))
    if big_store:
        for key in ("pod_post", "pod_get", "owner_post", "owner_get"):
            value = results[f"big_{key}"]["p99"] / results[key]["p99"]
            rows.append((f"p99 with {STORED_HELLOS:,} stored and {CLAIMED_NAMES:,} claimed / empty store, "
                         f"{results[key]['label'][3:]}", f"{value:.2f}x", "≤ 1.5x", value <= 1.5))
    verdict = {True: "met", False: "**not met**", None: ""}
    return ["| measure | value | goal | |", "|---|---:|---:|---|",
            *[f"| {what} | {value} | {goal} | {verdict[met]} |" for what, value, goal, met in rows]]


def later_parts(bench: "Bench", no_traces: Path, body: str) -> int:
    """Parts 2 to 6, each on a fresh world-service; returns world's peak RSS (KiB) on the big store."""
    work, measure = bench.work, bench.measure

    say(f"Part 2: a fresh world-service with {STORED_HELLOS:,} hellos over {STORED_NAMES:,} names "
        f"and {CLAIMED_NAMES:,} names claimed")
    # Over the default WORLD_STORE_CAP (1,000,000 waiting hellos) once part 3 adds its inboxes:
    # this store is meant to be big.
    bench.start_world(WORLD_STORE_CAP="10000000")
    bench.fill("store", "s", STORED_NAMES, STORED_HELLOS)
    bench.claim("c", CLAIMED_NAMES)
    owners = dict(NAMES=CLAIMED_NAMES, TOKEN_FORMAT=OWNER_TOKEN_FORMAT, SENDER="c")
    measure("big_pod_post", "1. pod POST (durable), big store", POD, lua(work, "big_pod_post", LUA_POST, "/hello/q", body))
    measure("big_pod_get", "1. pod GET, big store", POD, lua(work, "big_pod_get", LUA_GET, "/hello/q"))
    measure("big_owner_post", "1. pod POST as an owner, big store", POD,
            lua(work, "big_owner_post", LUA_OWNER_POST, "/hello/c", **owners))
    measure("big_owner_get", "1. pod GET of an owner's inbox, big store", POD,
            lua(work, "big_owner_get", LUA_OWNER_GET, "/hello/c", **owners))
    big_world_peak = rss_kib(bench.world.pid, "VmHWM")

    say("Part 3: GET ?limit=1 against the number of hellos waiting in the inbox (on the same store)")
    for depth, inboxes in DEPTHS.items():
        bench.fill(f"depth{depth}", f"d{depth}-", inboxes, depth * inboxes)
    for depth, inboxes in DEPTHS.items():
        script = lua(work, f"counted_read{depth}", LUA_COUNTED, f"d{depth}-", METHOD="GET",
                     PATH="/hello/%s%d?limit=1", NAMES=inboxes, COUNT=DEPTH_READS, DONE=str(work / "done"))
        measure(f"depth{depth}", f"pod GET ?limit=1, {depth} waiting", POD, script)

    say("Part 4: a fresh world-service with WORLD_STORE_SYNC=false (sends answered before any fsync)")
    bench.start_world(WORLD_STORE_SYNC="false")
    measure("nosync_pod_post", "1. pod POST, syncing off", POD, lua(work, "nosync_pod_post", LUA_POST, "/hello/n", body))
    measure("nosync_world_post", "1. world-service send, syncing off", WORLD,
            lua(work, "nosync_world_post", LUA_POST.replace('"%s%d"', '"%s%d/hellos"'), "/v1/inboxes/x", body))

    say("Part 5: traces compiled in but off (the default build, no OTEL_* set) against a build without them")
    # Alternating builds, twice each, on fresh stores: the difference between the builds
    # against the difference between two runs of the same build.
    for round_ in (1, 2):
        for build, binaries in (("default", RELEASE), ("no-traces", no_traces)):
            bench.start_world(binaries)
            bench.start_hello(binaries)
            measure(f"traces_{build}_post_{round_}", f"pod POST, {build} build, run {round_}", POD,
                    lua(work, f"traces_{build}_post_{round_}", LUA_POST, f"/hello/t{build[0]}{round_}-", body))
            measure(f"traces_{build}_get_{round_}", f"pod GET, {build} build, run {round_}", POD,
                    lua(work, f"traces_{build}_get_{round_}", LUA_GET, f"/hello/t{build[0]}{round_}-"))

    say("Part 6: hello -> world over loopback TCP against the Unix socket (the pod's default)")
    for round_ in (1, 2):
        for transport, world in (("tcp", WORLD), ("socket", None)):
            bench.start_world()
            bench.start_hello(world=world)
            measure(f"transport_{transport}_post_{round_}", f"pod POST, {transport}, run {round_}", POD,
                    lua(work, f"transport_{transport}_post_{round_}", LUA_POST, f"/hello/x{transport[0]}{round_}-", body))
            measure(f"transport_{transport}_get_{round_}", f"pod GET, {transport}, run {round_}", POD,
                    lua(work, f"transport_{transport}_get_{round_}", LUA_GET, f"/hello/x{transport[0]}{round_}-"))
    return big_world_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each timed wrk run (default 10)")
    parser.add_argument("--quick", action="store_true",
                        help="parts 0 and 1 only (ceilings and the pod on an empty store); prints them, writes nothing")
    args = parser.parse_args()

    for tool in ("wrk", "nginx", "cargo"):
        if not shutil.which(tool):
            fail(f"{tool} is missing (Debian: apt-get install -y wrk nginx; Rust: rustup)")
    busy = [port for port in PORTS if not free(port)]
    if busy:
        fail(f"ports {busy} on 127.0.0.1 are in use: stop what uses them (scripts/run-local.sh?) and retry")

    no_traces = ROOT / "target" / "bench-no-traces"
    if not args.quick:
        # Part 5's other build: the services without the `traces` feature (no exporter compiled
        # in), built first and kept aside, so that target/release ends with the default build.
        say("Building release binaries without the traces feature (for part 5), then the default ones")
        subprocess.run(["cargo", "build", "--release", "--quiet", "--no-default-features", "--bin", "hello-service",
                        "--bin", "world-service", "-p", "world-service", "-p", "hello-service"], cwd=ROOT, check=True)
        no_traces.mkdir(parents=True, exist_ok=True)
        for binary in ("hello-service", "world-service"):
            shutil.copy2(RELEASE / binary, no_traces / binary)
    else:
        say("Building release binaries")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "hello-service", "--bin", "world-service",
                    "-p", "world-service", "-p", "hello-service", "--example", "bare_actix"], cwd=ROOT, check=True)

    work = Path(tempfile.mkdtemp(prefix="hello-bench-"))
    work.chmod(0o755)
    bench = Bench(work, args.seconds)
    measure = bench.measure
    try:
        (work / "nginx" / "tmp").mkdir(parents=True)
        (work / "nginx" / "html").symlink_to(ROOT / "frontend")
        (work / "bare-nginx" / "tmp").mkdir(parents=True)
        (work / "bare-nginx" / "html").mkdir()
        # Printable, so that nothing on the way treats it differently from a page.
        (work / "bare-nginx" / "html" / "static.txt").write_text(("hello world " * 200)[:STATIC_BYTES - 1] + "\n")
        (work / "bare-nginx.conf").write_text(BARE_NGINX_CONF)

        bench.processes.start(["nginx", "-p", f"{work / 'nginx'}/", "-c", str(ROOT / "deploy" / "nginx" / "nginx.conf"),
                               "-e", "stderr", "-g", "daemon off;"], {}, work / "nginx.log")
        wait_ready(f"{POD}/nginx-healthz")
        bench.processes.start(["nginx", "-p", f"{work / 'bare-nginx'}/", "-c", str(work / "bare-nginx.conf"),
                               "-e", "stderr", "-g", "daemon off;"], {}, work / "bare-nginx.log")
        wait_ready(f"{BARE_NGINX}/static.txt")
        bench.processes.start([str(RELEASE / "examples" / "bare_actix")],
                              {"BARE_LISTEN": "127.0.0.1:8090", "BARE_SOCKET": str(work / "stand-in.sock")},
                              work / "bare.log")
        wait_ready(f"{STAND_IN_WORLD}/")

        say("Part 0: the ceilings (hello-service in front of a stand-in world that answers a constant)")
        bench.start_hello(world=f"unix:{work / 'stand-in.sock'}")
        measure("bare_static", "0. bare nginx, static file (2 workers, no log)", f"{BARE_NGINX}/static.txt")
        measure("static", "0. pod's nginx, static file", f"{POD}/favicon.svg")
        measure("one_hop", "0. one hop: pod's nginx -> hello /healthz", f"{POD}/healthz")
        measure("two_hop", "0. two hops: nginx -> hello /readyz -> stand-in world", f"{POD}/readyz")
        measure("bare", "0. actix-web, constant", f"{STAND_IN_WORLD}/")

        say("Time from process start to /readyz 200")
        # Part 1 stores well over a million hellos in all (each row on its own names).
        world_ready = bench.start_world(WORLD_STORE_CAP="10000000")
        hello_ready = bench.start_hello()
        print(f"  world-service ready in {world_ready * 1000:.1f} ms, hello-service in {hello_ready * 1000:.1f} ms")
        idle = {"hello": rss_kib(bench.hello.pid), "world": rss_kib(bench.world.pid)}

        body = '{"from":"bench"}'
        # Each GET run reads the names its POST run just filled, so reads really drain inboxes
        # (lease + acknowledgement) until they run dry.
        say(f"Part 1: the pod, starting from an empty store ({OWNERS_EMPTY_STORE:,} names claimed for the owners' rows)")
        bench.claim("o", OWNERS_EMPTY_STORE)
        owners = dict(NAMES=OWNERS_EMPTY_STORE, TOKEN_FORMAT=OWNER_TOKEN_FORMAT, SENDER="o")
        measure("pod_post", "1. pod POST (durable)", POD, lua(work, "pod_post", LUA_POST, "/hello/p", body))
        measure("pod_get", "1. pod GET /hello/{name}", POD, lua(work, "pod_get", LUA_GET, "/hello/p"))
        # Reliable reads take one hello each from inboxes deep enough never to run dry in a row,
        # so that every read is answered with a receipt and confirmed: pairs, not empty reads.
        bench.fill("reliable", "r", RELIABLE_NAMES, RELIABLE_NAMES * RELIABLE_DEPTH)
        measure("pod_reliable", "1. pod reliable read (?limit=1) + confirm (requests)", POD,
                lua(work, "pod_reliable", LUA_RELIABLE, "/hello/r", NAMES=RELIABLE_NAMES, QUERY="?limit=1"))
        measure("owner_post", "1. pod POST as an owner, with its token", POD,
                lua(work, "owner_post", LUA_OWNER_POST, "/hello/o", **owners))
        measure("owner_get", "1. pod GET of an owner's inbox, with its token", POD,
                lua(work, "owner_get", LUA_OWNER_GET, "/hello/o", **owners))
        measure("hello_post", "1. hello-service POST (durable)", HELLO, lua(work, "hello_post", LUA_POST, "/hello/h", body))
        measure("hello_get", "1. hello-service GET", HELLO, lua(work, "hello_get", LUA_GET, "/hello/h"))
        measure("world_post", "1. world-service send (durable)", WORLD,
                lua(work, "world_post", LUA_POST.replace('"%s%d"', '"%s%d/hellos"'), "/v1/inboxes/w", body))

        if not args.quick:
            big_world_peak = later_parts(bench, no_traces, body)
    finally:
        bench.processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    results, peak = bench.results, bench.peak
    header = ["| target | req/s | p50 ms | p99 ms | requests |", "|---|---:|---:|---:|---:|"]
    part0 = ["bare_static", "static", "one_hop", "two_hop", "bare"]
    part1 = ["pod_post", "pod_get", "pod_reliable", "owner_post", "owner_get",
             "hello_post", "hello_get", "world_post"]
    summary = [*header, *[table_row(results[key]) for key in part0 + part1], "",
               *goal_table(results, peak, big_store=not args.quick)]
    if args.quick:
        print("\n".join(summary))
        say("Quick benchmark done (nothing written)")
        return

    ratio = lambda a, b: results[a]["rps"] / results[b]["rps"]
    sizes = image_sizes()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    row = table_row
    lines = [
        "# Benchmarks",
        "",
        f"Made by `python3 bench/run.py` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores ({cpu}), "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.system()} {platform.release()}. "
        f"wrk, {THREADS} threads, {CONNECTIONS} connections, {args.seconds} s per timed row, client and servers sharing the cores, "
        "all on 127.0.0.1. Every row below had 0 non-2xx answers and 0 socket errors (the command fails otherwise). "
        "POSTs are durable (synced to disk before the 201; the embedded store commits concurrent sends together) "
        "and spread over 100,000 names; each GET row then reads the names its POST row filled, so reads "
        "drain real inboxes (lease, answer, acknowledgement) until they run dry, and later ones find them empty. "
        f"The owners' rows send as, and read the inboxes of, {OWNERS_EMPTY_STORE:,} claimed names with their tokens.",
        "",
        "Every ratio is against the first row: a bare nginx (2 workers, no access log) serving a "
        f"{STATIC_BYTES:,}-byte static file, what nginx itself can do on this machine. The pod's own nginx "
        "configuration writes a JSON access log line per request; the one- and two-hop rows are the "
        "architecture's ceilings (the two-hop row's world is a stand-in answering a constant: no store work). "
        "Where the CPU of a request goes, what was changed for it, and what limits each figure now: "
        "[performance.md](performance.md).",
        "",
        "![Requests per second](benchmarks.svg)",
        "",
        *summary,
        "",
        "| process | RSS idle | RSS peak under the load of part 1 | ready after start |",
        "|---|---:|---:|---:|",
        f"| hello-service | {idle['hello'] / 1024:.1f} MiB | {peak['hello'] / 1024:.1f} MiB | {hello_ready * 1000:.1f} ms |",
        f"| world-service | {idle['world'] / 1024:.1f} MiB | {peak['world'] / 1024:.1f} MiB | {world_ready * 1000:.1f} ms |",
        "",
        "Ready times are measured from spawning the process to the first 200 from `/readyz`, polling every millisecond "
        "(hello's includes asking world).",
        "",
        f"## With {STORED_HELLOS:,} hellos stored and {CLAIMED_NAMES:,} names claimed",
        "",
        f"A fresh world-service is filled through its own API with {STORED_HELLOS:,} durable hellos, "
        f"{STORED_HELLOS // STORED_NAMES} in each of {STORED_NAMES:,} inboxes, and {CLAIMED_NAMES:,} names are claimed "
        "(each with its own token); then the pod's rows of part 1 run again, the owners' rows as those claimed names. "
        "Every send asks the store who owns its sender's name, and every read who owns the inbox.",
        "",
        "![Latency](benchmarks-latency.svg)",
        "",
        *header,
        *[row(results[key]) for pair in (("pod_post", "big_pod_post"), ("pod_get", "big_pod_get"),
                                         ("owner_post", "big_owner_post"), ("owner_get", "big_owner_get"))
          for key in pair],
        "",
        f"world-service's RSS peaked at {big_world_peak / 1024:.1f} MiB on this store (its page cache is "
        "capped by `WORLD_STORE_CACHE_MB`, 4 by default; the operating system caches the file).",
        "",
        "## GET against the number waiting",
        "",
        f"On the same store, inboxes are filled with 1, 100 and 1000 hellos ({', '.join(f'{n:,} of depth {d:,}' for d, n in DEPTHS.items())}); "
        f"then {DEPTH_READS:,} reads with `?limit=1` walk them in turn, so every read takes one hello while "
        "the inbox still holds at least 90% of its depth (each depth-1 inbox is read once). Every answer is one "
        "hello and the count still waiting.",
        "",
        *header,
        *[row(results[f"depth{depth}"]) for depth in DEPTHS],
        "",
        "## Syncing off",
        "",
        "The same path on a fresh world-service started with `WORLD_STORE_SYNC=false`: sends are committed "
        "but answered before any fsync (synced only when the writer is idle or at shutdown). Only for "
        "this measurement: it gives up the durability guarantee.",
        "",
        *header,
        row(results["pod_post"]),
        row(results["nosync_pod_post"]),
        row(results["world_post"]),
        row(results["nosync_world_post"]),
        "",
        "| durable / syncing off | req/s |",
        "|---|---:|",
        f"| pod POST | {ratio('pod_post', 'nosync_pod_post'):.1%} |",
        f"| world-service send | {ratio('world_post', 'nosync_world_post'):.1%} |",
    ]
    def mean(part: str, variant: str, kind: str, field: str = "rps") -> float:
        return sum(results[f"{part}_{variant}_{kind}_{r}"][field] for r in (1, 2)) / 2

    def spread(part: str, variant: str, kind: str) -> float:
        """How far apart two runs of the same variant came out, relative to their mean."""
        a, b = (results[f"{part}_{variant}_{kind}_{r}"]["rps"] for r in (1, 2))
        return abs(a - b) / ((a + b) / 2)

    def alternated(part: str, order: tuple[str, str], shown: dict[str, str]) -> list[str]:
        """The rows of a part that alternated two variants twice (in `order`), and how the first
        of `shown` compares with the second, beside each one's run-to-run spread."""
        new, old = shown
        a, b = shown[new], shown[old]
        return [
            *header,
            *[row(results[f"{part}_{variant}_{kind}_{r}"]) for r in (1, 2) for variant in order
              for kind in ("post", "get")],
            "",
            f"| path | {a} / {b} (req/s, mean of 2) | p99 {a} / {b} | run-to-run spread, {a} | run-to-run spread, {b} |",
            "|---|---:|---:|---:|---:|",
            *[f"| pod {kind.upper()} | {mean(part, new, kind) / mean(part, old, kind):.1%} | "
              f"{mean(part, new, kind, 'p99') / mean(part, old, kind, 'p99'):.2f}x | "
              f"{spread(part, new, kind):.1%} | {spread(part, old, kind):.1%} |" for kind in ("post", "get")],
        ]

    lines += [
        "",
        "## Traces off: what it costs to have them compiled in",
        "",
        "The default build can export OpenTelemetry traces; with no `OTEL_*` variable set (as here) it "
        "exports none. Against a build without the `traces` feature (`--no-default-features`: no exporter, "
        "no propagation code at all), on fresh stores, alternating the two builds twice. The difference is "
        "measurable only if it is larger than the difference between two runs of the same build.",
        "",
        *alternated("traces", ("default", "no-traces"), {"default": "default", "no-traces": "no-traces"}),
        "",
        "## hello to world: Unix socket against loopback TCP",
        "",
        "In the pod, hello-service calls world-service over a Unix socket in a volume both mount "
        "(`WORLD_LISTEN_SOCKET`, `HELLO_WORLD_URL=unix:...`); TCP stays for world's own probes. The same "
        "binaries with hello pointed at world's TCP port instead, on fresh stores, alternating twice.",
        "",
        *alternated("transport", ("tcp", "socket"), {"socket": "socket", "tcp": "TCP"}),
    ]
    if sizes:
        lines += ["", "## Images", "", "| image | size |", "|---|---:|"] + [f"| {name}-service | {size:.1f} MB |" for name, size in sizes.items()]
    else:
        lines += ["", "Image sizes: not measured (build the images first: `tests/containers/run.sh`)."]
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(lines) + "\n")
    svg_chart(f"Requests per second, {CONNECTIONS} connections (higher is better)",
              [(results[key]["label"], results[key]["rps"]) for key in [*part0, *part1, "nosync_pod_post", "nosync_world_post"]],
              ROOT / "docs" / "benchmarks.svg")
    latency_rows = []
    for key, label in [("pod_post", "POST, empty store"), ("big_pod_post", "POST, big store"),
                       ("pod_get", "GET, empty store"), ("big_pod_get", "GET, big store"),
                       *[(f"depth{depth}", f"GET ?limit=1, {depth} waiting") for depth in DEPTHS]]:
        latency_rows += [(f"{label}: p50", results[key]["p50"]), (f"{label}: p99", results[key]["p99"])]
    svg_chart(f"Pod latency in ms, {CONNECTIONS} connections (lower is better)", latency_rows,
              ROOT / "docs" / "benchmarks-latency.svg", " ms")
    print("\n".join(lines[8:]))
    say("Benchmark done: docs/benchmarks.md, docs/benchmarks.svg and docs/benchmarks-latency.svg written")


if __name__ == "__main__":
    try:
        main()
    except WrkFailed as error:
        fail(str(error))
