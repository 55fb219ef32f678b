"""Is a change faster? Two builds (or settings) of the services, alternated through the pod's POST
and GET rows, with each process's peak RSS and CPU per request.

On this machine one wrk row varies by up to 20% from run to run, more than most changes are
worth; so each build runs ROUNDS times, alternating (before, after, before, after, ...), each
round on a fresh world-service with the same rows as bench/run.py's part 1 (durable POST over
100,000 names, then GET draining them). A difference counts only if it is larger than the spread
between the runs of the same build, which is printed beside it.

The CPU each request cost hello and world, and the pod in all, is printed as a multiple of what
it cost nginx in the same row: nginx's work per request is the same whichever build it fronts,
so this ratio stays put when the machine's speed drifts between rounds (on a busy host, nginx's
own CPU per request moved by 40% from one run to the next), where req/s does not.

With --reliable, each round also fills 10,000 inboxes 20 deep through world-service and runs
bench/run.py's reliable-read row (?limit=1, then the confirmation), counted in pairs per second.

Run: python3 -m bench.compare BEFORE_DIR AFTER_DIR [--rounds N] [--seconds N] [--reliable]
                               [--before-env NAME=VALUE ...] [--after-env NAME=VALUE ...]
  (each DIR holds hello-service and world-service, e.g. a copy of target/release taken before
  the change; the same DIR twice with different --*-env compares settings; loopback only; about
  25 s per build and round)
"""

import argparse
import shutil
import tempfile
from pathlib import Path

from bench.harness import POD, PORTS, RELIABLE_DEPTH, Bench
from bench.measure import cpu_seconds_by_name, fail, rss_kib, say
from bench.wrk import LUA_GET, LUA_POST, LUA_RELIABLE, lua
from tests.support.ports import is_listening

# Half of bench/run.py's 20,000 inboxes, to fill faster each round: 200,000 hellos, twice what
# one 10 s row confirms here.
RELIABLE_NAMES = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--reliable", action="store_true",
                        help="also compare reliable reads and their confirmations (pairs per second)")
    parser.add_argument("--before-env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for both services of the first build (repeatable)")
    parser.add_argument("--after-env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for both services of the second build (repeatable)")
    args = parser.parse_args()
    environments = {}
    for build, pairs in (("before", args.before_env), ("after", args.after_env)):
        if any("=" not in pair for pair in pairs):
            fail(f"--{build}-env takes NAME=VALUE")
        environments[build] = dict(pair.split("=", 1) for pair in pairs)
    for build in (args.before, args.after):
        for binary in ("hello-service", "world-service"):
            if not (build / binary).is_file():
                fail(f"{build / binary} is missing: give directories that hold both services' binaries")
    busy = [port for port in PORTS if is_listening("127.0.0.1", port)]
    if busy:
        fail(f"ports {busy} on 127.0.0.1 are in use: stop what uses them and retry")

    work = Path(tempfile.mkdtemp(prefix="hello-compare-"))
    work.chmod(0o755)
    bench = Bench(work, args.seconds)
    body = '{"from":"bench"}'
    peaks: dict[str, list[tuple[int, int]]] = {"before": [], "after": []}
    # (build, kind) -> per round: CPU per request of hello, world and the pod, each / nginx's.
    cpu: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:
        bench.start_nginx()

        def measure(build: str, kind: str, round_: int, script: Path) -> None:
            """One wrk row, and the CPU it cost each process (relative to nginx's)."""
            processes = bench.pod_pids()
            before = cpu_seconds_by_name(processes)
            label = {"post": "POST", "get": "GET", "reliable": "reliable read + confirm"}[kind]
            bench.measure(f"{build}_{kind}_{round_}", f"{label}, {build}, round {round_}", POD, script)
            used = {name: seconds - before[name] for name, seconds in cpu_seconds_by_name(processes).items()}
            nginx_used = used["nginx"] or float("nan")
            cpu.setdefault((build, kind), []).append(
                (used["hello"] / nginx_used, used["world"] / nginx_used, sum(used.values()) / nginx_used))

        for round_ in range(1, args.rounds + 1):
            for build, binaries in (("before", args.before), ("after", args.after)):
                say(f"Round {round_}, {build} ({binaries})")
                env = environments[build]
                bench.start_world(binaries, **env)
                bench.start_hello(binaries, **env)
                prefix = f"/hello/{build[0]}{round_}-"
                measure(build, "post", round_,
                        lua(work, f"{build}_post_{round_}", LUA_POST, prefix, body))
                measure(build, "get", round_,
                        lua(work, f"{build}_get_{round_}", LUA_GET, prefix))
                if args.reliable:
                    reliable = f"/hello/r{build[0]}{round_}-"
                    bench.fill(f"{build}_{round_}", reliable[len("/hello/"):], RELIABLE_NAMES,
                               RELIABLE_NAMES * RELIABLE_DEPTH)
                    measure(build, "reliable", round_,
                            lua(work, f"{build}_reliable_{round_}", LUA_RELIABLE, reliable,
                                NAMES=RELIABLE_NAMES, QUERY="?limit=1"))
                peaks[build].append((rss_kib(bench.pid("hello"), "VmHWM"), rss_kib(bench.pid("world"), "VmHWM")))
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)

    results = bench.results
    rounds = range(1, args.rounds + 1)
    print("\n| path | after / before (req/s, mean) | p99 after / before (mean) | spread before | spread after |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("post", "get", "reliable") if args.reliable else ("post", "get"):
        def values(build: str, field: str) -> list[float]:
            # Reliable reads count in pairs (a read and its confirmation), not requests.
            field = "pairs_per_s" if kind == "reliable" and field == "rps" else field
            return [results[f"{build}_{kind}_{r}"][field] for r in rounds]

        def mean(build: str, field: str) -> float:
            return sum(values(build, field)) / args.rounds

        def spread(build: str) -> float:
            """(largest - smallest) / mean of one build's req/s."""
            rps = values(build, "rps")
            return (max(rps) - min(rps)) / mean(build, "rps")

        print(f"| pod {kind.upper() if kind != 'reliable' else 'reliable pairs'} | {mean('after', 'rps') / mean('before', 'rps'):.1%} | "
              f"{mean('after', 'p99') / mean('before', 'p99'):.2f}x | {spread('before'):.1%} | {spread('after'):.1%} |")
    print("\n| path | CPU per request / nginx's, each round: hello, world, pod (before -> after) | pod after / before (mean) |")
    print("|---|---|---:|")
    for kind in ("post", "get", "reliable") if args.reliable else ("post", "get"):
        def rounds_of(build: str) -> str:
            return "; ".join(f"{h:.2f}, {w:.2f}, {pod:.2f}" for h, w, pod in cpu[(build, kind)])

        def pod_mean(build: str) -> float:
            return sum(pod for _, _, pod in cpu[(build, kind)]) / args.rounds

        print(f"| pod {kind.upper() if kind != 'reliable' else 'reliable read + confirm'} | {rounds_of('before')} -> "
              f"{rounds_of('after')} | {pod_mean('after') / pod_mean('before'):.1%} |")
    print("\n| build | hello RSS peak (MiB, each round) | world RSS peak (MiB, each round) |")
    print("|---|---|---|")
    for build in ("before", "after"):
        hello = ", ".join(f"{h / 1024:.1f}" for h, _ in peaks[build])
        world = ", ".join(f"{w / 1024:.1f}" for _, w in peaks[build])
        print(f"| {build} | {hello} | {world} |")
    say("Comparison done")


if __name__ == "__main__":
    main()
