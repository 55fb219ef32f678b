"""Benchmark of the pod on MongoDB: the store's commands per request, with the store on loopback
and 0.5 ms away.

nx-27017 (a MongoDB wire-protocol server over SQLite; tests/support/store.py) plays MongoDB. It
does about 1,600 single inserts a second and models no journal wait, so its req/s say little
about a real MongoDB: judge the design by the store commands per request
(world_store_commands_total, without `count`), which a store 0.5-1 ms away, every write waiting
for a majority's journal, multiplies into latency.

For each placement of the store: on loopback next to world, then behind bench/delay_proxy.py,
which holds every chunk DELAY_MS in each direction (a store on another node; the round trip it
really adds is measured first and printed). One pod (the pod's
nginx -> hello -> world -> the store) on a fresh database, wrk at 64 connections, --seconds each:
  - durable POST /hello/{name}, names of its own;
  - GET /hello/{name} over the POST's 100,000 names, draining what it stored (most reads find an
    empty inbox, as a polling reader's would: a lease without a write);
  - reliable read (?limit=1) + confirm pairs, from inboxes filled beforehand through world's API;
each printing req/s, p50, p99 and the store's commands per request, by command.

A request that waits over wrk's 2 s is counted as a timeout and reported, not a failure: nx falls
behind under 64 connections on some paths. --binaries measures another build (say, an earlier commit's release binaries) the same way, for
a before and after in the same conditions.

Run: python3 -m bench.mongo [--seconds N] [--delay-ms D] [--binaries DIR]   (from the repository's
root; builds release binaries first unless --binaries is given; loopback only; about 6 minutes,
most of it nx-27017 filling the reliable reads' inboxes)
"""

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.harness import POD, PORTS, RELEASE, ROOT, Bench
from bench.measure import fail, say
from bench.wrk import LUA_GET, LUA_POST, LUA_RELIABLE, lua
from tests.support.ports import free_port, is_listening
from tests.support.processes import Process, wait_until
from tests.support.store import MongoStore

BODY = '{"from":"bench"}'
# Inboxes for the reliable pairs, and hellos in each: deep enough that a row of pairs finds a
# hello at every read, small enough for nx to fill in seconds.
RELIABLE_NAMES = 200
RELIABLE_DEPTH = 25


class DelayedStore:
    """The store behind bench/delay_proxy.py: what world is told to connect to."""

    def __init__(self, store: MongoStore, work: Path, delay_ms: float) -> None:
        self.port = free_port()
        self.process = Process("delay-proxy", [sys.executable, "-m", "bench.delay_proxy",
                                               "--listen", f"127.0.0.1:{self.port}",
                                               "--to", f"127.0.0.1:{store.port}", "--delay-ms", str(delay_ms)],
                               {"PYTHONPATH": str(ROOT)}, work)

    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> None:
        self.process.start()
        wait_until(lambda: is_listening("127.0.0.1", self.port), 30, "the delay proxy to listen")

    def stop(self) -> None:
        self.process.kill()


def proxy_round_trip(work: Path, delay_ms: float) -> float:
    """The median round trip (ms) of 100 small messages through a delay proxy to an echo server:
    what the delay really is on this machine now."""
    echo = socket.create_server(("127.0.0.1", 0))

    def answer(peer: socket.socket) -> None:
        with peer:
            while data := peer.recv(1 << 16):
                peer.sendall(data)

    def serve() -> None:
        # Every connection: the readiness probe's comes first.
        while True:
            try:
                peer, _ = echo.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(peer,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    port = free_port()
    proxy = Process("delay-proxy-probe", [sys.executable, "-m", "bench.delay_proxy", "--listen", f"127.0.0.1:{port}",
                                          "--to", f"127.0.0.1:{echo.getsockname()[1]}", "--delay-ms", str(delay_ms)],
                    {"PYTHONPATH": str(ROOT)}, work)
    proxy.start()
    try:
        wait_until(lambda: is_listening("127.0.0.1", port), 30, "the delay proxy to listen")
        rounds = []
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(100):
                started = time.perf_counter()
                client.sendall(b"x" * 64)
                got = b""
                while len(got) < 64:
                    got += client.recv(64)
                rounds.append((time.perf_counter() - started) * 1000)
        return statistics.median(rounds)
    finally:
        proxy.kill()
        echo.close()


def rows(work: Path, store, label: str, seconds: int, binaries: Path) -> dict[str, dict]:
    """One pod on `store`: its POST, GET and reliable pairs."""
    bench = Bench(work, seconds, store=store, binaries=binaries, report_failures=True)
    try:
        bench.start_nginx()
        bench.start_world(binaries)
        bench.start_hello(binaries)
        measure = bench.measure
        measure("post", f"pod POST (durable), store {label}", POD, lua(work, "post", LUA_POST, "/hello/p", BODY))
        measure("get", f"pod GET /hello/{{name}}, store {label}", POD, lua(work, "get", LUA_GET, "/hello/p"))
        bench.fill("reliable", "r", RELIABLE_NAMES, RELIABLE_NAMES * RELIABLE_DEPTH)
        measure("reliable", f"pod reliable read (?limit=1) + confirm (requests), store {label}", POD,
                lua(work, "reliable", LUA_RELIABLE, "/hello/r", NAMES=RELIABLE_NAMES, QUERY="?limit=1"))
        for key in ("post", "get", "reliable"):
            spent = bench.results[key].get("store_commands", {})
            by_command = ", ".join(f"{command} {count / max(bench.results[key]['requests'], 1):.2f}"
                                   for command, count in sorted(spent.items()))
            print(f"    {key}: commands per request by command: {by_command}", flush=True)
        return bench.results
    finally:
        bench.stop()


def measure_on_mongodb(work: Path, seconds: int, delay_ms: float, binaries: Path) -> tuple[float, float, dict]:
    """The delay asked for and the delay proxy's measured round trip (ms), and the rows of each
    placement of the store: {placement: {"post"|"get"|"reliable": row}}. bench/run.py runs this
    as its last part."""
    results = {}
    round_trip = proxy_round_trip(work, delay_ms)
    print(f"  a round trip through the delay proxy ({delay_ms:g} ms each way): median {round_trip:.2f} ms",
          flush=True)
    for placement in ("on loopback", f"{delay_ms:g} ms away"):
        say(f"The pod on nx-27017, the store {placement}")
        store = MongoStore(work / f"store-{len(results)}")
        delayed = DelayedStore(store, work, delay_ms) if "away" in placement else None
        try:
            store.start()
            if delayed:
                delayed.start()
            results[placement] = rows(work / f"pod-{len(results)}", delayed or store, placement, seconds, binaries)
        finally:
            if delayed:
                delayed.stop()
            store.stop()
    return delay_ms, round_trip, results


def table(round_trip: float, results: dict) -> list[str]:
    """The rows of every placement: req/s, p99, commands a request (by command) and timeouts."""
    lines = ["| store | row | req/s | p50 ms | p99 ms | store commands a request | by command | timed out |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for placement, measured in results.items():
        for key in ("post", "get", "reliable"):
            row = measured[key]
            spent = row.get("store_commands", {})
            by_command = ", ".join(f"{command} {count / max(row['requests'], 1):.2f}"
                                   for command, count in sorted(spent.items()) if count)
            lines.append(f"| {placement} | {key} | {row['rps']:,.0f} | {row['p50']:.2f} | {row['p99']:.2f} | "
                         f"{row.get('commands_per_request', float('nan')):.2f} | {by_command} | "
                         f"{row.get('timeouts', 0):,} |")
    lines += ["", f"The delay proxy's round trip, measured before the rows: median {round_trip:.2f} ms."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--delay-ms", type=float, default=0.5)
    parser.add_argument("--binaries", type=Path, help="the release binaries to measure (default: build this checkout)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            fail(f"{tool} is missing (Debian: apt-get install -y wrk nginx)")
    busy = [port for port in PORTS if is_listening("127.0.0.1", port)]
    if busy:
        fail(f"ports {busy} on 127.0.0.1 are in use: stop what uses them (scripts/run-local.sh?) and retry")
    binaries = args.binaries or RELEASE
    if args.binaries is None:
        say("Building release binaries")
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "hello-service", "-p", "world-service"],
                       cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory(prefix="bench-mongo-") as temporary:
        _, round_trip, results = measure_on_mongodb(Path(temporary), args.seconds, args.delay_ms, binaries)
    say("Summary: req/s, p99 and store commands per request")
    print("\n".join(table(round_trip, results)), flush=True)
    say("Benchmark on MongoDB done")


if __name__ == "__main__":
    main()
