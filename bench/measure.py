"""What the benchmarks read of the processes they run (from /proc: memory, CPU, open files), how
long a process takes to be ready, the images' sizes, and how they report."""

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def machine_ticks() -> tuple[int, int]:
    """All CPU time of the machine so far, and the part of it no core had work for (idle and
    waiting on the disk), in clock ticks, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4]


def busy_since(before: tuple[int, int]) -> float:
    """The share of the machine's cores that had work since `before` (machine_ticks())."""
    total, idle = machine_ticks()
    elapsed = total - before[0]
    return 1 - (idle - before[1]) / elapsed if elapsed else float("nan")


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
