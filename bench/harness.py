"""The benchmarks' pod and what they measure on it: bench/run.py, profile.py and compare.py.

The pod is tests/support/pod.py's, wired as the real pod (hello calls world on its Unix socket),
with one addition: world also listens on 127.0.0.1:8082, for the rows of world-service alone and
for filling its store through its own API. nginx runs deploy/nginx/nginx.conf, on 127.0.0.1:8080.
"""

import hashlib
import re
import time
import urllib.request
from pathlib import Path

from bench.measure import OpenFiles, busy_since, children, fail, machine_ticks, rss_kib, say, wait_ready
from bench.wrk import LUA_COUNTED, LUA_WORLD_SEND, lua, owner_token, wrk, wrk_counted
from tests.support.pod import Pod, Release
from tests.support.processes import Process

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
# Parts that alternate variants (builds or settings) run each this many times, on fresh stores,
# and compare their medians.
ALTERNATING_ROUNDS = 3

WORLD = "http://127.0.0.1:8082"
HELLO = "http://127.0.0.1:8081"
POD = "http://127.0.0.1:8080"
STAND_IN_WORLD = "http://127.0.0.1:8090"
BARE_NGINX = "http://127.0.0.1:8091"
PORTS = (8080, 8081, 8082, 8090, 8091)
# What the services' images set (Dockerfile.hello, Dockerfile.world) that changes how they run.
IMAGE_ENV = {"MALLOC_ARENA_MAX": "2"}


# The pod's per-client budget for what nginx answers itself (its page and static files): 50 a
# second, for a real client. wrk is one client asking tens of thousands a second; measuring the
# ceiling of nginx's own answers needs that budget lifted, as hello's per-client limit is.
NGINX_BUDGET = "zone=answered_by_nginx:1m rate=50r/s;"
NGINX_BUDGET_LIFTED = "zone=answered_by_nginx:1m rate=10000000r/s;"


def budget_free_nginx_conf(work: Path, conf: Path = ROOT / "deploy" / "nginx" / "nginx.conf") -> Path:
    """The pod's nginx.conf (`conf`) with its per-client budget for nginx's own answers lifted,
    written in `work`; fails if the budget is no longer where this expects it."""
    text = conf.read_text()
    if text.count(NGINX_BUDGET) != 1:
        if conf != ROOT / "deploy" / "nginx" / "nginx.conf":
            return conf  # a configuration of the caller's own, measured as it is
        fail(f"{conf} no longer says '{NGINX_BUDGET}' once: update NGINX_BUDGET in bench/harness.py")
    lifted = work / "nginx-budget-free.conf"
    lifted.write_text(text.replace(NGINX_BUDGET, NGINX_BUDGET_LIFTED))
    return lifted


def store_commands(world: str = WORLD) -> dict[str, float]:
    """world's store commands so far by command (world_store_commands_total), without `count`:
    MongoDB's collection sizes from metadata, which the caps take at most every 500 ms and each
    scrape of /metrics takes once (this one too)."""
    with urllib.request.urlopen(f"{world}/metrics", timeout=5) as response:
        text = response.read().decode()
    commands = {}
    for line in text.splitlines():
        if line.startswith('world_store_commands_total{command="'):
            command = line.split('"', 2)[1]
            if command != "count":
                commands[command] = float(line.rsplit(" ", 1)[1])
    return commands


def spent_since(before: dict[str, float], world: str = WORLD) -> dict[str, float]:
    """The store commands world issued since `before` (store_commands()), those it issued at all."""
    after = store_commands(world)
    spent = {command: count - before.get(command, 0.0) for command, count in after.items()}
    return {command: count for command, count in spent.items() if count > 0}


class Bench:
    """The pod of one run, the rows measured so far, and the services' peak memory."""

    def __init__(self, work: Path, seconds: int, nginx_conf: Path | None = None, store=None,
                 binaries: Path = RELEASE, report_failures: bool = False) -> None:
        """`store`: a MongoDB for world (anything with a `uri()`), else the embedded store;
        `binaries`: where the services' release binaries are; `report_failures`: a row with
        requests that timed out (wrk's 2 s) or were answered non-2xx reports their numbers
        instead of failing the run (wrk's latencies leave the timed-out ones out)."""
        self.report_failures = report_failures
        work.mkdir(parents=True, exist_ok=True)
        nginx_conf = budget_free_nginx_conf(work, nginx_conf or ROOT / "deploy" / "nginx" / "nginx.conf")
        self.work = work
        self.seconds = seconds
        self.pod = Pod(work / "pod", name="bench", release=Release("this checkout", ROOT, binaries), world_port=8082,
                       store=store, database="bench",
                       env={"RUST_LOG": "warn", **IMAGE_ENV},
                       world_env={"WORLD_SHUTDOWN_DRAIN_MS": "0"},
                       hello_env={"HELLO_RATE_LIMIT_PER_SECOND": "0", "HELLO_SHUTDOWN_DRAIN_MS": "0"},
                       nginx_conf=nginx_conf, logs=work)
        self.results: dict[str, dict] = {}
        self.worlds_started = 0
        self.peak = {"hello": 0, "world": 0}

    # ---- the pod's processes ------------------------------------------------------------------
    def start_nginx(self) -> None:
        self.pod.prepare()
        self.pod.nginx.start()
        wait_ready(f"{POD}/nginx-healthz")

    def start_beside(self, name: str, command: list[str], env: dict[str, str], ready_url: str) -> None:
        """A process beside the pod (a stand-in, a bare server), stopped with it."""
        self.pod.extras.append(Process(name, command, env, self.work).start())
        wait_ready(ready_url)

    def start_world(self, binaries: Path = RELEASE, **env: str) -> float:
        """A world-service (from `binaries`) on a fresh data directory; returns seconds until ready."""
        self.worlds_started += 1
        self.pod.restart("world", binaries, WORLD_DATA_DIR=str(self.work / f"data-{self.worlds_started}"), **env)
        ready = wait_ready(f"{WORLD}/readyz")
        if self.pod.hello.running:
            # hello reconnects by itself; wait until it says the new world answers.
            wait_ready(f"{HELLO}/readyz")
        return ready

    def start_hello(self, binaries: Path = RELEASE, world: str | None = None, **env: str) -> float:
        """hello-service in front of `world` (by default world's Unix socket, as in the pod);
        returns seconds until ready."""
        self.pod.restart("hello", binaries, **({"HELLO_WORLD_URL": world} if world else {}), **env)
        return wait_ready(f"{HELLO}/readyz")

    def pid(self, name: str) -> int:
        return getattr(self.pod, name).pid

    def pod_pids(self) -> dict[str, list[int]]:
        """The pod's processes by name: nginx (its master and workers), hello and world."""
        nginx = self.pid("nginx")
        return {"nginx": [nginx, *children(nginx)], "hello": [self.pid("hello")], "world": [self.pid("world")]}

    def stop(self) -> None:
        self.pod.stop()

    # ---- world's own API: filling its store ----------------------------------------------------
    def world_answered(self, route: str, status: str) -> int:
        """POSTs to `route` (a route pattern) this world-service process answered with `status`,
        from its /metrics."""
        with urllib.request.urlopen(f"{WORLD}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0
        for line in text.splitlines():
            if line.startswith("world_http_requests_total{") and f'route="{route}"' in line \
                    and 'method="POST"' in line and f'status="{status}"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def claim(self, prefix: str, names: int) -> None:
        """Claims names prefix0 .. prefix(names-1) through world's own API, name n with the hash of
        owner_token(n), as hello-service would."""
        hashes = [hashlib.sha256(owner_token(number).encode()).hexdigest() for number in range(names)]
        script = lua(self.work, f"counted_claims_{prefix}", LUA_COUNTED, prefix, METHOD="POST",
                     PATH="/v1/names/%s%d", BODY_FORMAT='{"token_sha256":"%s"}', HASHES=hashes,
                     NAMES=names, COUNT=names, DONE=str(self.work / "done"))
        before = self.world_answered("/v1/names/{name}", "201")
        started = time.monotonic()
        row = wrk_counted(WORLD, script, self.work / "done")
        claimed = self.world_answered("/v1/names/{name}", "201") - before
        print(f"  claimed {claimed:,} names in {time.monotonic() - started:.0f} s ({row['rps']:,.0f}/s)", flush=True)
        if claimed < names:
            fail(f"only {claimed:,} of {names:,} names were claimed (non-2xx: {row['non2xx']})")

    def fill(self, name: str, prefix: str, names: int, count: int) -> None:
        """Stores exactly `count` hellos (plus at most one per connection) over `names` names,
        through world's batch send, one hello per batch."""
        script = lua(self.work, f"counted_{name}", LUA_COUNTED, prefix, METHOD="POST", PATH="/v1/hellos",
                     BODY_FORMAT='{"calls":[{"to":"%s","from":"filler","request_id":"bench-fill"}]}', BATCH=True,
                     NAMES=names, COUNT=count, DONE=str(self.work / "done"))
        before = self.world_answered("/v1/hellos", "200")
        started = time.monotonic()
        row = wrk_counted(WORLD, script, self.work / "done")
        # A batch is answered 200 whatever became of its one send: the script counts the refused.
        if row["refused"] is None:
            fail(f"filling {name}: wrk printed no 'refused N' line (the batch script's count)")
        if row["refused"]:
            fail(f"filling {name}: world refused {row['refused']:,} of its sends")
        stored = self.world_answered("/v1/hellos", "200") - before
        print(f"  stored {stored:,} hellos over {names:,} names in {time.monotonic() - started:.0f} s "
              f"({row['rps']:,.0f}/s)", flush=True)
        if stored < count:
            fail(f"filling {name}: only {stored:,} of {count:,} hellos were stored (non-2xx: {row['non2xx']})")

    # ---- rows ---------------------------------------------------------------------------------
    def measure(self, key: str, label: str, url: str, script: Path | None = None,
                pod_load: bool = True) -> dict:
        """One row; `pod_load` False for a ceiling measured while world runs (its RSS is not the
        pod's load)."""
        counted = script is not None and script.name.startswith("counted_")
        say(f"wrk {label}" + ("" if counted else f" ({self.seconds} s)"))
        pod_load = pod_load and self.pod.world.running and self.worlds_started == 1
        watched = {"hello": self.pid("hello"), "world": self.pid("world")} if pod_load else {}
        commands_before = store_commands() if self.pod.world.running else None
        ticks = machine_ticks()
        with OpenFiles(watched) as open_files:
            if counted:
                row = {"label": label, **wrk_counted(url, script, self.work / "done")}
            else:
                row = {"label": label, **wrk(url, self.seconds, script)}
        # Cores left idle during a row that should saturate them: the requests waited on
        # something other than the CPU (the store's syncs, one thread's queue).
        row["cores_busy"] = busy_since(ticks)
        commands = ""
        if commands_before is not None:
            spent = spent_since(commands_before)
            row["store_commands"] = spent
            if row["requests"]:
                per_request = sum(spent.values()) / row["requests"]
                row["commands_per_request"] = per_request
                commands = f"  store commands/request {per_request:.2f}"
        self.results[key] = row
        peak = ""
        if pod_load:
            # The RSS goal is about the rows of the first world: the pod's own load.
            self.peak = {name: max(self.peak[name], rss_kib(self.pid(name), "VmHWM")) for name in self.peak}
            peak = (f"  RSS peak so far: hello {self.peak['hello'] / 1024:.1f}, world {self.peak['world'] / 1024:.1f} MiB;"
                    f" open files at most: hello {open_files.most['hello']}, world {open_files.most['world']}")
        print(f"  {row['rps']:>10,.0f} req/s  p50 {row['p50']:.2f} ms  p99 {row['p99']:.2f} ms  "
              f"non-2xx {row['non2xx']}  requests {row['requests']:,}  cores busy {row['cores_busy']:.0%}"
              f"{commands}{peak}", flush=True)
        if script is not None and script.read_text().find("confirmed %d") >= 0 and row["pairs_per_s"] is None:
            fail(f"{label}: wrk printed no 'confirmed N' line (the reliable-read script's count)")
        errors = {kind: int(count) for kind, count in re.findall(r"(\w+) (\d+)", row["socket_errors"])}
        timeouts = errors.pop("timeout", 0)
        if self.report_failures and (timeouts or row["non2xx"]) and not any(errors.values()):
            print(f"  {timeouts:,} requests timed out (over 2 s), {row['non2xx']:,} answered non-2xx: the row's "
                  "req/s counts every answer", flush=True)
            row["timeouts"] = timeouts
        elif row["non2xx"] or row["socket_errors"]:
            fail(f"{label}: {row['non2xx']} non-2xx answers, socket errors: {row['socket_errors'] or 'none'}")
        if row["refused"]:
            fail(f"{label}: world refused {row['refused']} sends (in answers of 200: a batch's outcome)")
        return row

    def measure_world_send(self, key: str, label: str, prefix: str) -> dict:
        """world-service alone: durable sends, each a batch of one, to names prefix1 .. prefix100000."""
        row = self.measure(key, label, WORLD, lua(self.work, key, LUA_WORLD_SEND, prefix))
        if row["refused"] is None:
            fail(f"{label}: wrk printed no 'refused N' line (the batch script's count)")
        return row
