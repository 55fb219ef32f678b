"""Benchmark of waiting reads: thousands of readers waiting on one pod while hellos arrive.

Part 1, one pod on the embedded store (127.0.0.1; nginx as deployed, deploy/nginx/nginx.conf):
  - its processes' memory with nobody waiting;
  - 100 readers waiting (GET /hello/{name}?wait=20 through nginx, over connections from several
    loopback addresses: nginx limits connections per client address), then RATE sends a second
    for SECONDS to random waiting names: the store's commands a second, idle and with the sends;
  - the same with READERS readers: the memory each process (nginx, hello, world) adds per waiting
    reader, the wake latency (from a send's 201 to its reader's answer: p50, p99, max), the send
    rate held, the store's commands a second, idle and with the sends.
Part 2, three pods on one nx-27017 (tests/support/cluster.py): NX_READERS readers waiting on each
pod, sends at NX_RATE a second through every pod to random readers of any pod: wake latency
against WORLD_WAKE_INTERVAL_MS + 100 ms, and the store's commands a second of the three worlds
together. nx-27017 is a test server (SQLite underneath, about 1,600 single inserts a second, and
it runs an aggregation with $in in Python): its rates are far below MongoDB's, so this part is
sized to what it sustains; judge the design by the commands, not by nx's speed.

Each goal is printed beside its figure. hello's per-client request rate limit is lifted (this is
one machine playing thousands of clients); HELLO_WAIT_PER_POD, WORLD_WATCH_CAP and nginx's
worker_connections are raised when READERS exceeds their defaults, as docs/configuration.md says.

Run: python3 -m bench.waiting [--readers N] [--rate R] [--seconds S] [--nx-rate R] [--nx-readers N]
     [--skip-nx] [--skip-embedded]
(from the repository's root; builds release binaries first; loopback only; about 5 minutes)
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.harness import IMAGE_ENV, RELEASE, ROOT
from bench.measure import children, fail, rss_kib, say
from tests.support.cluster import Cluster
from tests.support.pod import Pod, Release

WAKE_INTERVAL_MS = 250
# Loopback addresses the readers connect from, this many readers each: under nginx's 128
# connections per client address (limit_conn); hello's waiting reads per client are raised to it.
READERS_PER_ADDRESS = 100


def metric(url: str, name: str) -> float:
    """The sum of every series of `name` in the Prometheus text at url."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def sources(first: int, count: int) -> str:
    """`count` loopback addresses 127.0.<first + k // 250>.<k % 250 + 1>, comma-separated."""
    return ",".join(f"127.0.{first + k // 250}.{k % 250 + 1}" for k in range(count))


class Readers:
    """A readers process: `count` readers waiting on prefix0.. through host:port."""

    def __init__(self, work: Path, host: str, port: int, prefix: str, count: int, first_source: int) -> None:
        self.out = work / f"readers-{prefix}.json"
        addresses = sources(first_source, max(1, -(-count // READERS_PER_ADDRESS)))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.waiting_clients", "readers", host, str(port), prefix, str(count),
             addresses, str(self.out)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if line.strip() != "connected":
            fail(f"the readers did not connect (said {line!r})")

    def stop(self) -> dict:
        self.process.stdin.close()
        self.process.wait(60)
        return json.loads(self.out.read_text())


def send(work: Path, host: str, port: int, prefixes: list[str], count: int, rate: float, seconds: float,
         source: str) -> subprocess.Popen:
    out = work / f"senders-{source}.json"
    return subprocess.Popen([sys.executable, "-m", "bench.waiting_clients", "senders", host, str(port),
                             ",".join(prefixes), str(count), str(rate), str(seconds), source, str(out)], cwd=ROOT)


def sent_results(work: Path, source: str) -> dict:
    return json.loads((work / f"senders-{source}.json").read_text())


def wait_for_gauge(url: str, name: str, at_least: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (value := metric(url, name)) < at_least:
        if time.monotonic() > deadline:
            fail(f"{name} reached {value:.0f}, not {at_least:.0f}, within {timeout:.0f} s")
        time.sleep(0.2)


def commands_per_second(world_metrics: list[str], seconds: float) -> float:
    before = sum(metric(url, "world_store_commands_total") for url in world_metrics)
    time.sleep(seconds)
    return (sum(metric(url, "world_store_commands_total") for url in world_metrics) - before) / seconds


def latencies(sent: dict[str, float], received: dict[str, float]) -> tuple[list[float], int]:
    """Milliseconds from each send's 201 to its reader's answer (0 when the answer came first),
    sorted; and how many sent hellos no reader received."""
    found = sorted(max(0.0, received[sender] - at) * 1000 for sender, at in sent.items() if sender in received)
    return found, len(sent) - len(found)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def rss_by_process(pod: Pod) -> dict[str, int]:
    nginx = pod.nginx.pid
    return {"nginx": sum(rss_kib(pid) for pid in [nginx, *children(nginx)]),
            "hello": rss_kib(pod.hello.pid), "world": rss_kib(pod.world.pid)}


def report_wakes(label: str, sent: dict, received: dict, seconds: float, goal_ms: float) -> None:
    found, missing = latencies(sent, received)
    p50, p99, most = percentile(found, 0.5), percentile(found, 0.99), max(found, default=float("nan"))
    verdict = "met" if p99 <= goal_ms else "NOT met"
    print(f"  {label}: {len(sent)} sends in {seconds:.1f} s ({len(sent) / seconds:.0f}/s held); wake latency "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {most:.1f} ms (goal p99 <= {goal_ms:.0f} ms: {verdict}); "
          f"{missing} not yet received when the readers stopped", flush=True)


def nginx_conf_for(work: Path, readers: int) -> Path:
    """The pod's nginx.conf with worker_connections raised for `readers` (two connections each, on
    either of its two workers), as docs/configuration.md tells an operator to do past the default."""
    text = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    connections = max(4096, 2 * readers + 2048)
    for old, new in [("worker_connections 4096;", f"worker_connections {connections};"),
                     ("worker_rlimit_nofile 16384;", f"worker_rlimit_nofile {2 * connections};")]:
        if old not in text:
            fail(f"deploy/nginx/nginx.conf no longer says '{old}': update bench/waiting.py")
        text = text.replace(old, new)
    path = work / "nginx-waiting.conf"
    path.write_text(text)
    return path


def embedded_part(work: Path, readers: int, rate: float, seconds: float) -> None:
    say(f"Part 1: one pod on the embedded store; 100, then {readers:,} readers waiting")
    hello_env = {"HELLO_RATE_LIMIT_PER_SECOND": "0", "HELLO_WAIT_PER_CLIENT": str(READERS_PER_ADDRESS),
                 "HELLO_WAIT_PER_POD": str(max(readers, 10_000)), "HELLO_SHUTDOWN_DRAIN_MS": "0"}
    world_env = {"WORLD_WATCH_CAP": str(max(2 * readers, 20_000)), "WORLD_SHUTDOWN_DRAIN_MS": "0",
                 "WORLD_WAKE_INTERVAL_MS": str(WAKE_INTERVAL_MS)}
    pod = Pod(work / "pod", name="waiting", release=Release("this checkout", ROOT, RELEASE), world_port=8082,
              env={"RUST_LOG": "warn", **IMAGE_ENV}, hello_env=hello_env, world_env=world_env, logs=work,
              nginx_conf=nginx_conf_for(work, readers))
    hello_metrics, world_metrics = "http://127.0.0.1:8081/metrics", ["http://127.0.0.1:8082/metrics"]
    try:
        pod.start()
        for _ in range(20):  # every path touched once before the baseline
            pod.request("POST", "/hello/warm", b'{"from":"bench"}', {"Content-Type": "application/json"})
            pod.get("/hello/warm")
        time.sleep(1)
        baseline = rss_by_process(pod)
        print(f"  memory with nobody waiting: " + ", ".join(f"{name} {kib / 1024:.1f} MiB"
                                                           for name, kib in baseline.items()), flush=True)
        for count, prefix, first_source in [(100, "few", 1), (readers, "many", 10)]:
            group = Readers(work, "127.0.0.1", 8080, prefix, count, first_source)
            wait_for_gauge(hello_metrics, "hello_waiting_readers", count, 120)
            time.sleep(2)
            idle = commands_per_second(world_metrics, 10)
            print(f"  {count:,} waiting: the store's commands {idle:.1f}/s idle "
                  f"({idle * WAKE_INTERVAL_MS / 1000:.2f} an interval)", flush=True)
            if count == readers:
                memory = rss_by_process(pod)
                for name in memory:
                    added = (memory[name] - baseline[name]) * 1024 / count
                    goal = " (goal <= 1024 B: " + ("met)" if added <= 1024 else "NOT met)") if name == "world" else ""
                    print(f"  {name} adds {added:,.0f} B per waiting reader "
                          f"({baseline[name] / 1024:.1f} -> {memory[name] / 1024:.1f} MiB){goal}", flush=True)
            senders = send(work, "127.0.0.1", 8080, [prefix], count, rate, seconds, "127.0.200.1")
            busy = commands_per_second(world_metrics, seconds * 0.8)
            senders.wait(seconds + 120)
            time.sleep(1)
            result = group.stop()
            sent = sent_results(work, "127.0.200.1")
            held = len(sent["sent"]) / sent["seconds"]
            print(f"  {count:,} waiting, {rate:.0f} sends/s: the store's commands {busy:.1f}/s, "
                  f"{busy / held:.2f} a send (its commit, its reader's lease and acknowledgement); "
                  f"reader errors {result['errors'] or 'none'}, send errors {sent['errors'] or 'none'}", flush=True)
            report_wakes(f"{count:,} waiting", sent["sent"], result["received"], sent["seconds"], 50)
    finally:
        pod.stop()


def nx_part(work: Path, rate: float, seconds: float, per_pod: int) -> None:
    say(f"Part 2: three pods on one nx-27017, {per_pod:,} readers waiting on each, {rate:.0f} sends/s")
    cluster = Cluster(work / "cluster", Release("this checkout", ROOT, RELEASE), world_port=8082,
                      hello_env={"HELLO_RATE_LIMIT_PER_SECOND": "0", "HELLO_WAIT_PER_CLIENT": str(READERS_PER_ADDRESS),
                                 "RUST_LOG": "warn"},
                      world_env={"WORLD_WAKE_INTERVAL_MS": str(WAKE_INTERVAL_MS), "RUST_LOG": "warn"})
    try:
        cluster.start()
        world_metrics = [f"http://{pod.address}:8082/metrics" for pod in cluster.pods]
        groups = []
        for index, pod in enumerate(cluster.pods):
            groups.append(Readers(work, pod.address, 8080, f"p{index}x", per_pod, 20 + 5 * index))
            wait_for_gauge(f"{pod.hello_url}/metrics", "hello_waiting_readers", per_pod, 120)
        time.sleep(2)
        idle = commands_per_second(world_metrics, 10)
        print(f"  {3 * per_pod:,} waiting: the store's commands {idle:.1f}/s idle, three worlds together", flush=True)
        prefixes = [f"p{index}x" for index in range(3)]
        senders = [send(work, pod.address, 8080, prefixes, per_pod, rate / 3, seconds, f"127.0.201.{index + 1}")
                   for index, pod in enumerate(cluster.pods)]
        busy = commands_per_second(world_metrics, seconds * 0.8)
        for process in senders:
            process.wait(seconds + 300)
        time.sleep(2)
        received: dict[str, float] = {}
        for group in groups:
            received |= group.stop()["received"]
        sent: dict[str, float] = {}
        took = 0.0
        for index in range(3):
            result = sent_results(work, f"127.0.201.{index + 1}")
            sent |= result["sent"]
            took = max(took, result["seconds"])
        print(f"  the store's commands with the sends: {busy:.1f}/s, {(busy - idle) / (len(sent) / took):.1f} a "
              f"send above the idle rate", flush=True)
        report_wakes(f"{3 * per_pod:,} waiting on 3 pods", sent, received, took, WAKE_INTERVAL_MS + 100)
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--nx-rate", type=float, default=20)
    parser.add_argument("--nx-readers", type=int, default=100, help="readers waiting on each of the three pods")
    parser.add_argument("--skip-nx", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    args = parser.parse_args()
    say("Building release binaries")
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "hello-service", "-p", "world-service"],
                   cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory(prefix="bench-waiting-") as temporary:
        work = Path(temporary)
        if not args.skip_embedded:
            embedded_part(work, args.readers, args.rate, args.seconds)
        if not args.skip_nx:
            nx_part(work, args.nx_rate, args.seconds, args.nx_readers)
    say("Benchmark of waiting reads done")


if __name__ == "__main__":
    main()
