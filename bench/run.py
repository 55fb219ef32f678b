#!/usr/bin/env python3
"""Benchmark of the pod on this machine, against ceilings measured in the same run.

With wrk at 64 connections (two threads) for each target:
  1. nginx serving a small static file (deploy/nginx/nginx.conf, frontend/favicon.svg): the
     ceiling for anything behind nginx;
  2. a bare actix-web handler returning a constant: the ceiling for one Rust HTTP hop;
  3. GET and durable POST /hello/{name} through the whole pod (nginx -> hello -> world -> store);
  4. the same straight at hello-service, and world-service alone (its internal API);
then RSS of hello and world idle and under load, time from process start to /readyz 200, and the
image sizes when podman has built them. Writes docs/benchmarks.md and docs/benchmarks.svg.

Run: python3 bench/run.py [--seconds N]   (builds release binaries first; loopback only)
"""

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release"
CONNECTIONS = 64


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


def parse_wrk(output: str) -> dict:
    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": rps,
        "p50": latency_ms("50"),
        "p99": latency_ms("99"),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }


def wrk(url: str, seconds: int, script: Path | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    result = subprocess.run(command + [url], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"wrk failed on {url}: {result.stderr}")
    return parse_wrk(result.stdout)


LUA_POST = """
counter = 0
request = function()
  counter = counter + 1
  local path = string.format("%s%d", PREFIX, math.random(1, 100000))
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, BODY)
end
"""
LUA_GET = """
request = function()
  return wrk.format("GET", string.format("%s%d", PREFIX, math.random(1, 100000)))
end
"""


def lua(directory: Path, name: str, template: str, prefix: str, body: str = "") -> Path:
    path = directory / f"{name}.lua"
    path.write_text(f'PREFIX = "{prefix}"\nBODY = \'{body}\'\n' + template)
    return path


def free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


class Processes:
    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=open(log, "wb"),
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


def svg_chart(rows: list[tuple[str, float]], path: Path) -> None:
    width, bar_height, gap, label_width = 760, 26, 10, 290
    top = 40
    height = top + len(rows) * (bar_height + gap) + 20
    biggest = max(value for _, value in rows) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="12" y="24" font-size="15" font-weight="bold" fill="#1b1f33">Requests per second, {CONNECTIONS} connections (higher is better)</text>',
    ]
    for index, (label, value) in enumerate(rows):
        y = top + index * (bar_height + gap)
        bar = (width - label_width - 110) * value / biggest
        parts.append(f'<text x="12" y="{y + 18}" fill="#1b1f33">{label}</text>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{bar:.1f}" height="{bar_height}" rx="4" fill="#4f46e5"/>')
        parts.append(f'<text x="{label_width + bar + 8:.1f}" y="{y + 18}" fill="#1b1f33">{value:,.0f}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run (default 10)")
    args = parser.parse_args()

    for tool in ("wrk", "nginx", "cargo"):
        if not shutil.which(tool):
            fail(f"{tool} is missing (Debian: apt-get install -y wrk nginx; Rust: rustup)")
    busy = [port for port in (8080, 8081, 8082, 8090, 8091) if not free(port)]
    if busy:
        fail(f"ports {busy} on 127.0.0.1 are in use: stop what uses them (scripts/run-local.sh?) and retry")

    say("Building release binaries (hello-service, world-service, the bare actix example)")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "hello-service", "--bin", "world-service",
                    "-p", "world-service", "-p", "hello-service", "--example", "bare_actix"], cwd=ROOT, check=True)

    work = Path(tempfile.mkdtemp(prefix="hello-bench-"))
    work.chmod(0o755)
    processes = Processes()
    results: dict[str, dict] = {}
    try:
        (work / "nginx" / "tmp").mkdir(parents=True)
        (work / "nginx" / "html").symlink_to(ROOT / "frontend")
        quiet = {"RUST_LOG": "warn"}

        say("Time from process start to /readyz 200")
        world = processes.start([str(RELEASE / "world-service")],
                                {**quiet, "WORLD_DATA_DIR": str(work / "data"), "WORLD_SHUTDOWN_DRAIN_MS": "0"}, work / "world.log")
        world_ready = wait_ready("http://127.0.0.1:8082/readyz")
        hello = processes.start([str(RELEASE / "hello-service")],
                                {**quiet, "HELLO_LISTEN": "127.0.0.1:8081", "HELLO_RATE_LIMIT_PER_SECOND": "0",
                                 "HELLO_SHUTDOWN_DRAIN_MS": "0"}, work / "hello.log")
        hello_ready = wait_ready("http://127.0.0.1:8081/readyz")
        print(f"  world-service ready in {world_ready * 1000:.1f} ms, hello-service in {hello_ready * 1000:.1f} ms")
        idle = {"hello": rss_kib(hello.pid), "world": rss_kib(world.pid)}

        processes.start(["nginx", "-p", f"{work / 'nginx'}/", "-c", str(ROOT / "deploy" / "nginx" / "nginx.conf"),
                         "-e", "stderr", "-g", "daemon off;"], {}, work / "nginx.log")
        wait_ready("http://127.0.0.1:8080/nginx-healthz")
        bare = processes.start([str(RELEASE / "examples" / "bare_actix")], {"BARE_LISTEN": "127.0.0.1:8090"}, work / "bare.log")
        wait_ready("http://127.0.0.1:8090/")

        body = '{"from":"bench"}'
        # Each GET run reads the names its POST run just filled, so reads really drain inboxes
        # (claim + acknowledgement) until they run dry.
        scripts = {
            "pod_post": lua(work, "pod_post", LUA_POST, "/hello/p", body),
            "pod_get": lua(work, "pod_get", LUA_GET, "/hello/p"),
            "hello_post": lua(work, "hello_post", LUA_POST, "/hello/h", body),
            "hello_get": lua(work, "hello_get", LUA_GET, "/hello/h"),
            "world_post": lua(work, "world_post", LUA_POST.replace('"%s%d"', '"%s%d/hellos"'), "/v1/inboxes/w", body),
        }
        targets = [
            ("static", "1. nginx, static file", "http://127.0.0.1:8080/favicon.svg", None),
            ("bare", "2. actix-web, constant", "http://127.0.0.1:8090/", None),
            ("pod_post", "3. pod POST (durable)", "http://127.0.0.1:8080", scripts["pod_post"]),
            ("pod_get", "3. pod GET /hello/{name}", "http://127.0.0.1:8080", scripts["pod_get"]),
            ("hello_post", "4. hello-service POST (durable)", "http://127.0.0.1:8081", scripts["hello_post"]),
            ("hello_get", "4. hello-service GET", "http://127.0.0.1:8081", scripts["hello_get"]),
            ("world_post", "4. world-service send (durable)", "http://127.0.0.1:8082", scripts["world_post"]),
        ]
        peak = {"hello": 0, "world": 0}
        for key, label, url, script in targets:
            say(f"wrk {label} ({args.seconds} s)")
            results[key] = {"label": label, **wrk(url, args.seconds, script)}
            peak = {"hello": max(peak["hello"], rss_kib(hello.pid, "VmHWM")), "world": max(peak["world"], rss_kib(world.pid, "VmHWM"))}
            row = results[key]
            print(f"  {row['rps']:>10,.0f} req/s  p50 {row['p50']:.2f} ms  p99 {row['p99']:.2f} ms  non-2xx {row['non2xx']}")
    finally:
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    ratio = lambda a, b: results[a]["rps"] / results[b]["rps"]
    sizes = image_sizes()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    lines = [
        "# Benchmarks",
        "",
        f"Made by `python3 bench/run.py` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores ({cpu}), "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.system()} {platform.release()}. "
        f"wrk, 2 threads, {CONNECTIONS} connections, {args.seconds} s per row, client and servers sharing the cores, all on 127.0.0.1. "
        "POSTs are durable (synced to disk before the 201; the embedded store commits concurrent sends together); "
        "POSTs spread over 100,000 names; each GET row then reads the names its POST row filled, so reads "
        "drain real inboxes (claim, answer, acknowledgement) until they run dry, and later ones find them empty.",
        "",
        "![Requests per second](benchmarks.svg)",
        "",
        "| target | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in results.values():
        lines.append(f"| {row['label']} | {row['rps']:,.0f} | {row['p50']:.2f} | {row['p99']:.2f} | {row['non2xx']} |")
    lines += [
        "",
        "| ratio | value | goal |",
        "|---|---:|---:|",
        f"| pod GET / nginx static (3/1) | {ratio('pod_get', 'static'):.1%} | ≥ 25% |",
        f"| pod durable POST / nginx static (3/1) | {ratio('pod_post', 'static'):.1%} | ≥ 15% |",
        f"| hello-service GET / bare actix-web (4/2) | {ratio('hello_get', 'bare'):.1%} | |",
        f"| hello-service POST / bare actix-web (4/2) | {ratio('hello_post', 'bare'):.1%} | |",
        "",
        "| process | RSS idle | RSS peak under load | ready after start |",
        "|---|---:|---:|---:|",
        f"| hello-service | {idle['hello'] / 1024:.1f} MiB | {peak['hello'] / 1024:.1f} MiB | {hello_ready * 1000:.1f} ms |",
        f"| world-service | {idle['world'] / 1024:.1f} MiB | {peak['world'] / 1024:.1f} MiB | {world_ready * 1000:.1f} ms |",
        "",
        "Ready times are measured from spawning the process to the first 200 from `/readyz`, polling every millisecond "
        "(hello's includes asking world).",
    ]
    if sizes:
        lines += ["", "| image | size |", "|---|---:|"] + [f"| {name}-service | {size:.1f} MB |" for name, size in sizes.items()]
    else:
        lines += ["", "Image sizes: not measured (build the images first: `tests/containers/run.sh`)."]
    lines += ["", "Not yet measured here: latency with 1,000,000 stored hellos, GET latency against inbox depth, "
              "and durable POST against the same path with syncing off."]
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(lines) + "\n")
    svg_chart([(row["label"], row["rps"]) for row in results.values()], ROOT / "docs" / "benchmarks.svg")
    print("\n".join(lines[9:]))
    say("Benchmark done: docs/benchmarks.md and docs/benchmarks.svg written")


if __name__ == "__main__":
    main()
