#!/usr/bin/env python3
"""Benchmark of the pod on this machine, against ceilings measured in the same run.

With wrk at 64 connections (two threads) for each target:
  1. nginx serving a small static file (deploy/nginx/nginx.conf, frontend/favicon.svg): the
     ceiling for anything behind nginx;
  2. a bare actix-web handler returning a constant: the ceiling for one Rust HTTP hop;
  3. GET and durable POST /hello/{name} through the whole pod (nginx -> hello -> world -> store);
  4. the same straight at hello-service, and world-service alone (its internal API);
then RSS of hello and world idle and under load, time from process start to /readyz 200, and the
image sizes when podman has built them.

Then, each on a fresh world-service:
  - traces off: the default build (traces compiled in, no OTEL_* set) against a build without
    the `traces` feature, alternating, twice each;
  - scaling: the pod's POST and GET again with 1,000,000 hellos stored across 100,000 names,
    against the rows of 3. (which started from an empty store);
  - inbox depth: GET ?limit=1 from inboxes holding 1, about 100 and about 1000 hellos;
  - syncing off: the pod's POST and world's send with WORLD_STORE_SYNC=false, the same path
    without the fsync, against the durable rows.

Writes docs/benchmarks.md, docs/benchmarks.svg (throughput) and docs/benchmarks-latency.svg.

Run: python3 bench/run.py [--seconds N]   (builds release binaries first; loopback only; ~5 min)
"""

import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wrk import (  # noqa: E402
    CONNECTIONS, LUA_COUNTED, LUA_GET, LUA_POST, LUA_RELIABLE, THREADS, WrkFailed, lua, wrk,
    wrk_counted,
)

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release"
# The scaling store: this many hellos spread evenly over this many names (10 each).
STORED_HELLOS = 1_000_000
STORED_NAMES = 100_000
# Inbox depth -> how many inboxes of that depth to fill. Each depth row makes DEPTH_READS reads
# with ?limit=1 spread over its inboxes, so every inbox stays within 10% of its depth while read.
DEPTHS = {1: 20_000, 100: 2_000, 1000: 200}
# Names claimed in the store of part 5 (claims are looked up on every send and read).
CLAIMED_NAMES = 100_000
DEPTH_READS = 20_000

WORLD = "http://127.0.0.1:8082"
HELLO = "http://127.0.0.1:8081"
POD = "http://127.0.0.1:8080"


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
        """A world-service (from `binaries`) on a fresh data directory; returns seconds until ready."""
        if self.world:
            self.processes.stop(self.world)
        self.worlds_started += 1
        self.world = self.processes.start(
            [str(binaries / "world-service")],
            {"RUST_LOG": "warn", "WORLD_DATA_DIR": str(self.work / f"data-{self.worlds_started}"),
             "WORLD_SHUTDOWN_DRAIN_MS": "0", **env},
            self.work / "world.log")
        ready = wait_ready(f"{WORLD}/readyz")
        if self.hello:
            # hello reconnects by itself; wait until it says the new world answers.
            wait_ready(f"{HELLO}/readyz")
        return ready

    def start_hello(self, binaries: Path = RELEASE) -> float:
        if self.hello:
            self.processes.stop(self.hello)
        self.hello = self.processes.start(
            [str(binaries / "hello-service")],
            {"RUST_LOG": "warn", "HELLO_LISTEN": "127.0.0.1:8081", "HELLO_RATE_LIMIT_PER_SECOND": "0",
             "HELLO_SHUTDOWN_DRAIN_MS": "0"},
            self.work / "hello.log")
        return wait_ready(f"{HELLO}/readyz")

    def measure(self, key: str, label: str, url: str, script: Path | None = None) -> dict:
        counted = script is not None and script.name.startswith("counted_")
        say(f"wrk {label}" + ("" if counted else f" ({self.seconds} s)"))
        if counted:
            row = {"label": label, **wrk_counted(url, script, self.work / "done")}
        else:
            row = {"label": label, **wrk(url, self.seconds, script)}
        self.results[key] = row
        if self.world and self.worlds_started == 1:
            # The RSS goal is about the rows of the first world: the pod's own load.
            self.peak = {"hello": max(self.peak["hello"], rss_kib(self.hello.pid, "VmHWM")),
                         "world": max(self.peak["world"], rss_kib(self.world.pid, "VmHWM"))}
        print(f"  {row['rps']:>10,.0f} req/s  p50 {row['p50']:.2f} ms  p99 {row['p99']:.2f} ms  "
              f"non-2xx {row['non2xx']}  requests {row['requests']:,}", flush=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each timed wrk run (default 10)")
    args = parser.parse_args()

    for tool in ("wrk", "nginx", "cargo"):
        if not shutil.which(tool):
            fail(f"{tool} is missing (Debian: apt-get install -y wrk nginx; Rust: rustup)")
    busy = [port for port in (8080, 8081, 8082, 8090) if not free(port)]
    if busy:
        fail(f"ports {busy} on 127.0.0.1 are in use: stop what uses them (scripts/run-local.sh?) and retry")

    # Part 6's other build: the services without the `traces` feature (no exporter compiled in),
    # built first and kept aside, so that target/release ends with the default build.
    no_traces = ROOT / "target" / "bench-no-traces"
    say("Building release binaries without the traces feature (for part 6), then the default ones")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--no-default-features", "--bin", "hello-service",
                    "--bin", "world-service", "-p", "world-service", "-p", "hello-service"], cwd=ROOT, check=True)
    no_traces.mkdir(parents=True, exist_ok=True)
    for binary in ("hello-service", "world-service"):
        shutil.copy2(RELEASE / binary, no_traces / binary)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "hello-service", "--bin", "world-service",
                    "-p", "world-service", "-p", "hello-service", "--example", "bare_actix"], cwd=ROOT, check=True)

    work = Path(tempfile.mkdtemp(prefix="hello-bench-"))
    work.chmod(0o755)
    bench = Bench(work, args.seconds)
    measure = bench.measure
    try:
        (work / "nginx" / "tmp").mkdir(parents=True)
        (work / "nginx" / "html").symlink_to(ROOT / "frontend")

        say("Time from process start to /readyz 200")
        world_ready = bench.start_world()
        hello_ready = bench.start_hello()
        print(f"  world-service ready in {world_ready * 1000:.1f} ms, hello-service in {hello_ready * 1000:.1f} ms")
        idle = {"hello": rss_kib(bench.hello.pid), "world": rss_kib(bench.world.pid)}

        bench.processes.start(["nginx", "-p", f"{work / 'nginx'}/", "-c", str(ROOT / "deploy" / "nginx" / "nginx.conf"),
                               "-e", "stderr", "-g", "daemon off;"], {}, work / "nginx.log")
        wait_ready(f"{POD}/nginx-healthz")
        bench.processes.start([str(RELEASE / "examples" / "bare_actix")], {"BARE_LISTEN": "127.0.0.1:8090"},
                              work / "bare.log")
        wait_ready("http://127.0.0.1:8090/")

        body = '{"from":"bench"}'
        # Each GET run reads the names its POST run just filled, so reads really drain inboxes
        # (lease + acknowledgement) until they run dry.
        say("Part 1: ceilings and the pod, starting from an empty store")
        measure("static", "1. nginx, static file", f"{POD}/favicon.svg")
        measure("bare", "2. actix-web, constant", "http://127.0.0.1:8090/")
        measure("pod_post", "3. pod POST (durable)", POD, lua(work, "pod_post", LUA_POST, "/hello/p", body))
        measure("pod_get", "3. pod GET /hello/{name}", POD, lua(work, "pod_get", LUA_GET, "/hello/p"))
        measure("pod_post_r", "3. pod POST (durable), for reliable reads", POD, lua(work, "pod_post_r", LUA_POST, "/hello/r", body))
        measure("pod_reliable", "3. pod reliable read + confirm (requests)", POD, lua(work, "pod_reliable", LUA_RELIABLE, "/hello/r"))
        measure("hello_post", "4. hello-service POST (durable)", HELLO, lua(work, "hello_post", LUA_POST, "/hello/h", body))
        measure("hello_get", "4. hello-service GET", HELLO, lua(work, "hello_get", LUA_GET, "/hello/h"))
        measure("world_post", "4. world-service send (durable)", WORLD,
                lua(work, "world_post", LUA_POST.replace('"%s%d"', '"%s%d/hellos"'), "/v1/inboxes/w", body))

        say(f"Part 2: a fresh world-service filled with {STORED_HELLOS:,} hellos over {STORED_NAMES:,} names")
        # Over the default WORLD_STORE_CAP (1,000,000 waiting hellos) once part 3 adds its inboxes:
        # this store is meant to be big.
        bench.start_world(WORLD_STORE_CAP="10000000")
        bench.fill("store", "s", STORED_NAMES, STORED_HELLOS)
        measure("big_pod_post", f"3. pod POST (durable), {STORED_HELLOS:,} stored", POD,
                lua(work, "big_pod_post", LUA_POST, "/hello/q", body))
        measure("big_pod_get", f"3. pod GET, {STORED_HELLOS:,} stored", POD, lua(work, "big_pod_get", LUA_GET, "/hello/q"))
        big_world_peak = rss_kib(bench.world.pid, "VmHWM")

        say("Part 3: GET ?limit=1 against the number of hellos waiting in the inbox (on the same store)")
        for depth, inboxes in DEPTHS.items():
            bench.fill(f"depth{depth}", f"d{depth}-", inboxes, depth * inboxes)
        for depth, inboxes in DEPTHS.items():
            script = lua(work, f"counted_read{depth}", LUA_COUNTED, f"d{depth}-", METHOD="GET",
                         PATH="/hello/%s%d?limit=1", NAMES=inboxes, COUNT=DEPTH_READS, DONE=str(work / "done"))
            measure(f"depth{depth}", f"pod GET ?limit=1, {depth} waiting", POD, script)

        say(f"Part 4: a fresh world-service with {CLAIMED_NAMES:,} names claimed (each send and read asks who owns its name)")
        bench.start_world()
        # Each name claimed with its own token hash: the name's number as 64 hex digits.
        script = lua(work, "counted_claims", LUA_COUNTED, "c", METHOD="POST", PATH="/v1/names/%s%d",
                     BODY_FORMAT='{"token_sha256":"%064x"}', NAMES=CLAIMED_NAMES, COUNT=CLAIMED_NAMES,
                     DONE=str(work / "done"))
        started = time.monotonic()
        claims = wrk_counted(WORLD, script, work / "done")
        claimed = world_claims_made()
        print(f"  claimed {claimed:,} names in {time.monotonic() - started:.0f} s ({claims['rps']:,.0f}/s)", flush=True)
        if claimed < CLAIMED_NAMES:
            fail(f"only {claimed:,} of {CLAIMED_NAMES:,} names were claimed (non-2xx: {claims['non2xx']})")
        measure("claims_pod_post", f"3. pod POST (durable), {CLAIMED_NAMES:,} names claimed", POD,
                lua(work, "claims_pod_post", LUA_POST, "/hello/k", body))
        measure("claims_pod_get", f"3. pod GET, {CLAIMED_NAMES:,} names claimed", POD,
                lua(work, "claims_pod_get", LUA_GET, "/hello/k"))

        say("Part 5: a fresh world-service with WORLD_STORE_SYNC=false (sends answered before any fsync)")
        bench.start_world(WORLD_STORE_SYNC="false")
        measure("nosync_pod_post", "3. pod POST, syncing off", POD, lua(work, "nosync_pod_post", LUA_POST, "/hello/n", body))
        measure("nosync_world_post", "4. world-service send, syncing off", WORLD,
                lua(work, "nosync_world_post", LUA_POST.replace('"%s%d"', '"%s%d/hellos"'), "/v1/inboxes/x", body))

        say("Part 6: traces compiled in but off (the default build, no OTEL_* set) against a build without them")
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
    finally:
        bench.processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    results, peak = bench.results, bench.peak
    ratio = lambda a, b: results[a]["rps"] / results[b]["rps"]
    p99_ratio = lambda a, b: results[a]["p99"] / results[b]["p99"]
    sizes = image_sizes()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    row = lambda r: f"| {r['label']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['requests']:,} |"
    header = ["| target | req/s | p50 ms | p99 ms | requests |", "|---|---:|---:|---:|---:|"]

    def against_empty_store(post_key: str, get_key: str, what: str, goal: str) -> list[str]:
        """The pod's POST and GET rows on a store holding `what`, beside part 1's on the empty
        store, and how their p99s compare."""
        return [
            *header,
            row(results["pod_post"]).replace("(durable) |", "(durable), empty store |"),
            row(results[post_key]),
            row(results["pod_get"]).replace("{name} |", "{name}, empty store |"),
            row(results[get_key]),
            "",
            f"| p99 with {what} / p99 on the empty store | value | goal |",
            "|---|---:|---:|",
            f"| POST | {p99_ratio(post_key, 'pod_post'):.2f}x | ≤ {goal} |",
            f"| GET | {p99_ratio(get_key, 'pod_get'):.2f}x | ≤ {goal} |",
        ]

    part1 = ["static", "bare", "pod_post", "pod_get", "pod_post_r", "pod_reliable", "hello_post", "hello_get", "world_post"]
    lines = [
        "# Benchmarks",
        "",
        f"Made by `python3 bench/run.py` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores ({cpu}), "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.system()} {platform.release()}. "
        f"wrk, {THREADS} threads, {CONNECTIONS} connections, {args.seconds} s per timed row, client and servers sharing the cores, "
        "all on 127.0.0.1. Every row below had 0 non-2xx answers and 0 socket errors (the command fails otherwise). "
        "POSTs are durable (synced to disk before the 201; the embedded store commits concurrent sends together) "
        "and spread over 100,000 names; each GET row then reads the names its POST row filled, so reads "
        "drain real inboxes (lease, answer, acknowledgement) until they run dry, and later ones find them empty.",
        "",
        "![Requests per second](benchmarks.svg)",
        "",
        *header,
        *[row(results[key]) for key in part1],
        "",
        "| ratio | value | goal |",
        "|---|---:|---:|",
        f"| pod GET / nginx static (3/1) | {ratio('pod_get', 'static'):.1%} | ≥ 25% |",
        f"| pod durable POST / nginx static (3/1) | {ratio('pod_post', 'static'):.1%} | ≥ 15% |",
        f"| pod reliable read + confirm pairs / nginx static requests (3/1): "
        f"{results['pod_reliable']['pairs_per_s']:,.0f} pairs/s | "
        f"{results['pod_reliable']['pairs_per_s'] / results['static']['rps']:.1%} | |",
        f"| hello-service GET / bare actix-web (4/2) | {ratio('hello_get', 'bare'):.1%} | |",
        f"| hello-service POST / bare actix-web (4/2) | {ratio('hello_post', 'bare'):.1%} | |",
        "",
        "| process | RSS idle | RSS peak under the load above | ready after start |",
        "|---|---:|---:|---:|",
        f"| hello-service | {idle['hello'] / 1024:.1f} MiB | {peak['hello'] / 1024:.1f} MiB | {hello_ready * 1000:.1f} ms |",
        f"| world-service | {idle['world'] / 1024:.1f} MiB | {peak['world'] / 1024:.1f} MiB | {world_ready * 1000:.1f} ms |",
        "",
        "Ready times are measured from spawning the process to the first 200 from `/readyz`, polling every millisecond "
        "(hello's includes asking world).",
        "",
        "## With 1,000,000 hellos stored",
        "",
        f"A fresh world-service is filled through its own API with {STORED_HELLOS:,} durable hellos, "
        f"{STORED_HELLOS // STORED_NAMES} in each of {STORED_NAMES:,} inboxes; then the pod's rows of part 1 run again "
        "on other names. The empty-store rows are those of part 1.",
        "",
        "![Latency](benchmarks-latency.svg)",
        "",
        *against_empty_store("big_pod_post", "big_pod_get", f"{STORED_HELLOS:,} stored", "2x"),
        "",
        f"world-service's RSS peaked at {big_world_peak / 1024:.1f} MiB with the million stored (its page cache is "
        "capped by `WORLD_STORE_CACHE_MB`, 4 by default; the operating system caches the file).",
        "",
        f"## With {CLAIMED_NAMES:,} names claimed",
        "",
        f"A fresh world-service (part 4) with {CLAIMED_NAMES:,} names claimed through its own API (each with its own "
        "token hash). Every send asks the store who owns its sender's name (and every read who owns the "
        "inbox): these rows measure that lookup among the claims, against part 1's empty store.",
        "",
        *against_empty_store("claims_pod_post", "claims_pod_get", f"{CLAIMED_NAMES:,} claimed", "1.5x"),
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
    def mean(kind: str, build: str, field: str = "rps") -> float:
        return sum(results[f"traces_{build}_{kind}_{r}"][field] for r in (1, 2)) / 2

    def spread(kind: str, build: str) -> float:
        """How far apart two runs of the same build came out, relative to their mean."""
        a, b = (results[f"traces_{build}_{kind}_{r}"]["rps"] for r in (1, 2))
        return abs(a - b) / ((a + b) / 2)

    lines += [
        "",
        "## Traces off: what it costs to have them compiled in",
        "",
        "The default build can export OpenTelemetry traces; with no `OTEL_*` variable set (as here) it "
        "exports none. Against a build without the `traces` feature (`--no-default-features`: no exporter, "
        "no propagation code at all), on fresh stores, alternating the two builds twice. The difference is "
        "measurable only if it is larger than the difference between two runs of the same build.",
        "",
        *header,
        *[row(results[f"traces_{build}_{kind}_{r}"]) for r in (1, 2) for build in ("default", "no-traces")
          for kind in ("post", "get")],
        "",
        "| path | default / no-traces (req/s, mean of 2) | p99 default / no-traces | run-to-run spread, default | run-to-run spread, no-traces |",
        "|---|---:|---:|---:|---:|",
        *[f"| pod {kind.upper()} | {mean(kind, 'default') / mean(kind, 'no-traces'):.1%} | "
          f"{mean(kind, 'default', 'p99') / mean(kind, 'no-traces', 'p99'):.2f}x | "
          f"{spread(kind, 'default'):.1%} | {spread(kind, 'no-traces'):.1%} |" for kind in ("post", "get")],
    ]
    if sizes:
        lines += ["", "## Images", "", "| image | size |", "|---|---:|"] + [f"| {name}-service | {size:.1f} MB |" for name, size in sizes.items()]
    else:
        lines += ["", "Image sizes: not measured (build the images first: `tests/containers/run.sh`)."]
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(lines) + "\n")
    svg_chart(f"Requests per second, {CONNECTIONS} connections (higher is better)",
              [(results[key]["label"], results[key]["rps"]) for key in [*part1, "nosync_pod_post", "nosync_world_post"]],
              ROOT / "docs" / "benchmarks.svg")
    latency_rows = []
    for key, label in [("pod_post", "POST, empty store"), ("big_pod_post", "POST, 1,000,000 stored"),
                       ("pod_get", "GET, empty store"), ("big_pod_get", "GET, 1,000,000 stored"),
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
