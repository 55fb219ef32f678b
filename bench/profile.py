"""Where the CPU of one request goes, per process: the pod (nginx, hello, world) under one wrk row.

For each path (pod POST, pod GET, reliable read + confirm), it runs wrk against the pod as
bench/run.py does and reads every process's CPU time (user + system, from /proc) before and
after: CPU microseconds per request for nginx (all workers), hello-service and world-service,
and each divided by nginx's (nginx's work per request does not change with the services' code,
so this ratio compares builds measured in different runs, where the machine's speed drifts).
With --perf it also samples the services' stacks (perf record -g, software clock events) and
prints, per process and thread, what that time was spent on: each system call, other kernel
work, and kinds of user code; perf.data files are kept in --out for flamegraphs
(perf script | inferno-collapse-perf | inferno-flamegraph). With --syscalls it counts the system
calls each process made per request (perf stat on the kernel's syscall tracepoints): a `write`
or `futex` in hello or world is mostly one thread waking another.

Run: python3 -m bench.profile [--seconds N] [--perf] [--syscalls] [--binaries DIR] [--out DIR]
  DIR defaults to target/release; for readable stacks build with symbols:
  CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=1 \\
    CARGO_TARGET_DIR=target/profiling cargo build --release -p hello-service -p world-service
  then --binaries target/profiling/release. Loopback only; about a minute per path.
"""

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.harness import POD, PORTS, RELEASE, RELIABLE_DEPTH, RELIABLE_NAMES, ROOT, WORLD, Bench
from bench.measure import cpu_seconds_by_name, fail, say
from bench.wrk import LUA_GET, LUA_POST, LUA_RELIABLE, lua
from tests.support.ports import is_listening

# The system calls --syscalls counts: the sockets, waiting and waking, and the store's file.
SYSCALLS = ["recvfrom", "sendto", "read", "write", "readv", "writev", "epoll_wait", "epoll_ctl", "futex",
            "sched_yield", "pread64", "pwrite64", "fdatasync", "accept4", "connect", "close"]


# A sample's user-space leaf symbol -> what it is (the first pattern found in the name wins).
USER_KINDS = [
    ("malloc", "allocation"), ("free", "allocation"), ("realloc", "allocation"),
    ("memmove", "copying"), ("memcpy", "copying"), ("memset", "copying"),
    ("redb::", "store (redb)"), ("serde_json", "JSON"), ("serde::", "JSON"),
    ("actix_http", "HTTP server (actix)"), ("actix_web", "HTTP server (actix)"), ("actix_router", "HTTP server (actix)"),
    ("regex", "HTTP server (actix)"), ("httparse", "HTTP parsing"), ("hyper", "HTTP client (hyper)"),
    ("reqwest", "HTTP client (hyper)"), ("h2::", "HTTP client (hyper)"), ("http::", "HTTP types"),
    ("tokio", "async runtime (tokio)"), ("prometheus", "metrics"), ("tracing", "logging"),
    ("sha2", "token hashing"), ("governor", "rate limit"),
]


def breakdown(data: Path) -> list[tuple[str, float]]:
    """Shares of a perf recording's samples by what they were doing: the system call a kernel
    sample was in (or other kernel work), or the kind of user-space code (by its symbol; Rust
    frames are not unwound without frame pointers, so this is self time)."""
    script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, text=True).stdout
    counts: dict[str, int] = {}
    for sample in script.split("\n\n"):
        lines = [line.strip() for line in sample.strip().splitlines()]
        if len(lines) < 2:
            continue
        thread = "store writer thread" if lines[0].startswith("embedded-store") else "HTTP threads"
        frames = lines[1:]
        syscall = next((frame.split()[1].split("+")[0].removeprefix("__x64_sys_") for frame in frames
                        if "__x64_sys_" in frame), None)
        if "[kernel.kallsyms]" in frames[0]:
            kind = f"kernel: {syscall}" if syscall else "kernel: scheduling, interrupts"
        else:
            symbol = frames[0].split(" ", 1)[1] if " " in frames[0] else frames[0]
            kind = next((name for pattern, name in USER_KINDS if pattern in symbol), "other user code")
        key = f"{thread} | {kind}"
        counts[key] = counts.get(key, 0) + 1
    total = sum(counts.values()) or 1
    return sorted(((key, count / total) for key, count in counts.items()), key=lambda item: -item[1])


def syscalls_per_request(counts: Path, requests: int) -> str:
    """perf stat's CSV of syscall tracepoints -> "sendto 1.00, recvfrom 1.06, ..." per request."""
    per_request = []
    for line in counts.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("syscalls:sys_enter_") and fields[0].isdigit():
            share = int(fields[0]) / requests
            if share >= 0.01:
                per_request.append(f"{fields[2].removeprefix('syscalls:sys_enter_')} {share:.2f}")
    return ", ".join(per_request) or "none counted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--perf", action="store_true", help="also sample stacks with perf record -g")
    parser.add_argument("--syscalls", action="store_true", help="also count each process's system calls per request")
    parser.add_argument("--binaries", type=Path, default=RELEASE)
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "profile")
    parser.add_argument("--paths", default="post,get,reliable", help="comma-separated: post, get, reliable")
    parser.add_argument("--nginx-conf", type=Path, default=ROOT / "deploy" / "nginx" / "nginx.conf",
                        help="the pod's nginx configuration to run (default deploy/nginx/nginx.conf)")
    parser.add_argument("--tcp", action="store_true",
                        help="hello reaches world over loopback TCP instead of world's Unix socket (the pod's way)")
    args = parser.parse_args()
    if (args.perf or args.syscalls) and not shutil.which("perf"):
        fail("perf is missing (Debian: apt-get install -y linux-perf)")
    busy = [port for port in PORTS if is_listening("127.0.0.1", port)]
    if busy:
        fail(f"ports {busy} on 127.0.0.1 are in use: stop what uses them and retry")
    args.out.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="hello-profile-"))
    work.chmod(0o755)
    bench = Bench(work, args.seconds, nginx_conf=args.nginx_conf.resolve())
    report: list[str] = []
    try:
        bench.start_nginx()
        bench.start_world(args.binaries)
        bench.start_hello(args.binaries, world=WORLD if args.tcp else None)
        body = '{"from":"bench"}'
        # GETs drain what the POST before them stored, as in bench/run.py; reliable reads take one
        # hello at a time from inboxes filled deep first.
        scripts = {
            "post": ("pod POST (durable)", lua(work, "post", LUA_POST, "/hello/p", body)),
            "get": ("pod GET", lua(work, "get", LUA_GET, "/hello/p")),
            "reliable": ("pod reliable read (?limit=1) + confirm", lua(work, "reliable", LUA_RELIABLE, "/hello/r",
                                                                      NAMES=RELIABLE_NAMES, QUERY="?limit=1")),
        }
        wanted = args.paths.split(",")
        if "get" in wanted and "post" not in wanted:
            say("Filling inboxes for the GETs")
            bench.measure("fill", "pod POST (fill)", POD, scripts["post"][1])
        if "reliable" in wanted:
            say("Filling inboxes for the reliable reads")
            bench.fill("reliable", "r", RELIABLE_NAMES, RELIABLE_NAMES * RELIABLE_DEPTH)
        for path in wanted:
            label, script = scripts[path]
            processes = bench.pod_pids()
            before = cpu_seconds_by_name(processes)
            recorders = []
            if args.perf:
                for name in ("hello", "world"):
                    data = args.out / f"{path}-{name}.perf.data"
                    recorders.append((name, data, subprocess.Popen(
                        ["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-o", str(data),
                         "-p", str(processes[name][0])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            counters = []
            if args.syscalls:
                events = ",".join(f"syscalls:sys_enter_{call}" for call in SYSCALLS)
                for name, pids in processes.items():
                    counts = args.out / f"{path}-{name}.syscalls.csv"
                    counters.append((name, counts, subprocess.Popen(
                        ["perf", "stat", "-x", ",", "-e", events, "-o", str(counts), "-p", ",".join(map(str, pids))],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            row = bench.measure(path, label, POD, script)
            after = cpu_seconds_by_name(processes)
            for _, _, recorder in recorders + counters:
                recorder.send_signal(2)
                recorder.wait(timeout=60)
            requests = row["requests"]
            transport = "loopback TCP" if args.tcp else "Unix socket"
            report.append(f"\n{label}, hello -> world over {transport}: {row['rps']:,.0f} req/s, {requests:,} requests")
            report.append("| process | CPU µs per request | share | / nginx's |")
            report.append("|---|---:|---:|---:|")
            total = sum(after[name] - before[name] for name in processes)
            # Against nginx's: see the module's docstring.
            nginx_used = (after["nginx"] - before["nginx"]) or float("nan")
            for name in processes:
                used = after[name] - before[name]
                report.append(f"| {name} | {used / requests * 1e6:.1f} | {used / total:.0%} | {used / nginx_used:.2f} |")
            report.append(f"| pod in all | {total / requests * 1e6:.1f} | | {total / nginx_used:.2f} |")
            if counters:
                report.append("\n| process | system calls per request (0.01 or more) |")
                report.append("|---|---|")
                for name, counts, _ in counters:
                    report.append(f"| {name} | {syscalls_per_request(counts, requests)} |")
            for name, data, _ in recorders:
                report.append(f"\n{name}-service: where its CPU went (perf samples, {data.name}; 2% or more)")
                report.append("| thread | doing | share |")
                report.append("|---|---|---:|")
                for key, share in breakdown(data):
                    if share >= 0.02:
                        thread, kind = key.split(" | ")
                        report.append(f"| {thread} | {kind} | {share:.0%} |")
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(report))
    say("Profile done" + (f": perf data in {args.out}" if args.perf else ""))


if __name__ == "__main__":
    main()
