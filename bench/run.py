"""Benchmark of the pod on this machine, against ceilings measured in the same run.

With wrk at 64 connections (two threads) for each target. Every ratio is against row 0, a bare
nginx (2 workers, no access log) serving a 1.4 KB static file: what nginx can do on this machine.
  0. the ceilings: bare nginx; the pod's nginx (deploy/nginx/nginx.conf, with its JSON access
     log) serving frontend/favicon.svg; one Rust hop (the pod's nginx -> hello /healthz); two
     hops (nginx -> hello /readyz -> a stand-in world answering a constant: no store work);
     and a bare actix-web handler returning a constant;
  1. GET and durable POST /hello/{name} through the whole pod (nginx -> hello -> world -> store),
     reliable read + confirm pairs (one hello each, from deep inboxes), and sends and reads as
     owners of claimed names with their tokens; the goal rows (POST, GET, pairs) twice more, each
     time after the bare nginx and the two-hop ceiling measured again (three alternating rounds:
     the goals report medians and ranges, as ratios against both ceilings of the same round); then the same straight at hello-service, and
     world-service alone (its internal API, a batch of one hello per request); after each of
     these rows it prints both services' peak RSS so far and the most files (sockets included)
     each had open during the row;
then RSS of hello and world idle and under load, time from process start to /readyz 200, and the
image sizes when podman has built them.

Then, each on a fresh world-service:
  - scaling: the pod's rows again with 1,000,000 hellos stored across 100,000 names and 100,000
    names claimed, against the rows of 1. (which started from an empty store);
  - inbox depth: GET ?limit=1 from inboxes holding 1, about 100 and about 1000 hellos;
  - syncing off: the pod's POST and world's send with WORLD_STORE_SYNC=false, the same path
    without the fsync, against the durable rows;
  - traces: the default build with traces off (no OTEL_* set), the same build with traces on (to
    an OTLP receiver on loopback that discards them), and a build without the `traces` feature,
    alternating, 3 rounds each, compared by their medians;
  - transport: hello -> world over loopback TCP against the Unix socket the pod uses,
    alternating, 3 rounds each;
  - MongoDB: the pod on nx-27017, the store on loopback and 0.5 ms away (bench/mongo.py): POST,
    GET and reliable pairs with their store commands a request.

Writes docs/benchmarks.md, docs/benchmarks.svg (throughput) and docs/benchmarks-latency.svg.

Run: python3 -m bench.run [--seconds N] [--quick]   (from the repository's root; builds release
binaries first; loopback only; ~27 min; --quick runs parts 0 and 1 only, prints them and writes
nothing)
"""

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench import report
from bench.harness import (ALTERNATING_ROUNDS, BARE_NGINX, CLAIMED_NAMES, DEPTH_READS, DEPTHS, HELLO,
                           OWNERS_EMPTY_STORE, POD, PORTS, RELEASE, RELIABLE_DEPTH, RELIABLE_NAMES, ROOT,
                           STAND_IN_WORLD, STATIC_BYTES, STORED_HELLOS, STORED_NAMES, WORLD, Bench)
from bench.measure import fail, rss_kib, say
from bench.mongo import measure_on_mongodb
from bench.wrk import (LUA_COUNTED, LUA_GET, LUA_OWNER_GET, LUA_OWNER_POST, LUA_POST, LUA_RELIABLE,
                       OWNER_TOKEN_FORMAT, WrkFailed, lua)
from tests.support.otlp import Receiver
from tests.support.ports import is_listening
from tests.support.store import NX

BODY = '{"from":"bench"}'
# How far the last part puts the store: a MongoDB on another node of the cluster.
MONGODB_DELAY_MS = 0.5

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


def build(quick: bool) -> Path:
    """Release binaries of this checkout; without --quick, first those without the `traces`
    feature (part 5's other build), kept aside so that target/release ends with the default
    build. Returns where the build without traces is."""
    no_traces = ROOT / "target" / "bench-no-traces"
    services = ["--bin", "hello-service", "--bin", "world-service", "-p", "world-service", "-p", "hello-service"]
    if not quick:
        say("Building release binaries without the traces feature (for part 5), then the default ones")
        subprocess.run(["cargo", "build", "--release", "--quiet", "--no-default-features", *services], cwd=ROOT,
                       check=True)
        no_traces.mkdir(parents=True, exist_ok=True)
        for binary in ("hello-service", "world-service"):
            shutil.copy2(RELEASE / binary, no_traces / binary)
    else:
        say("Building release binaries")
    subprocess.run(["cargo", "build", "--release", "--quiet", *services, "--example", "bare_actix"], cwd=ROOT,
                   check=True)
    return no_traces


def start_ceilings(bench: Bench) -> None:
    """The pod's nginx, the bare nginx and the bare actix-web handler (which also stands in for
    world on a Unix socket of its own)."""
    work = bench.work
    bench.start_nginx()
    (work / "bare-nginx" / "tmp").mkdir(parents=True)
    (work / "bare-nginx" / "html").mkdir()
    # Printable, so that nothing on the way treats it differently from a page.
    (work / "bare-nginx" / "html" / "static.txt").write_text(("hello world " * 200)[:STATIC_BYTES - 1] + "\n")
    (work / "bare-nginx.conf").write_text(BARE_NGINX_CONF)
    bench.start_beside("bare-nginx", ["nginx", "-p", f"{work / 'bare-nginx'}/", "-c", str(work / "bare-nginx.conf"),
                                      "-e", "stderr", "-g", "daemon off;"], {}, f"{BARE_NGINX}/static.txt")
    bench.start_beside("bare-actix", [str(RELEASE / "examples" / "bare_actix")],
                       {"BARE_LISTEN": "127.0.0.1:8090", "BARE_SOCKET": str(work / "stand-in.sock")},
                       f"{STAND_IN_WORLD}/")


def first_parts(bench: Bench) -> tuple[dict, dict]:
    """Parts 0 and 1; returns the services' idle RSS and their times to ready."""
    work, measure = bench.work, bench.measure
    say("Part 0: the ceilings (hello-service in front of a stand-in world that answers a constant)")
    bench.start_hello(world=f"unix:{work / 'stand-in.sock'}")
    measure("bare_static", "0. bare nginx, static file (2 workers, no log)", f"{BARE_NGINX}/static.txt")
    measure("static", "0. pod's nginx, static file", f"{POD}/favicon.svg")
    measure("one_hop", "0. one hop: pod's nginx -> hello /healthz", f"{POD}/healthz")
    measure("two_hop", "0. two hops: nginx -> hello /readyz -> stand-in world", f"{POD}/readyz")
    measure("bare", "0. actix-web, constant", f"{STAND_IN_WORLD}/")

    say("Time from process start to /readyz 200")
    # Part 1 stores well over a million hellos in all (each row on its own names).
    ready = {"world": bench.start_world(WORLD_STORE_CAP="10000000"), "hello": bench.start_hello()}
    print(f"  world-service ready in {ready['world'] * 1000:.1f} ms, hello-service in {ready['hello'] * 1000:.1f} ms")
    idle = {name: rss_kib(bench.pid(name)) for name in ("hello", "world")}

    # Each GET run reads the names its POST run just filled, so reads really drain inboxes
    # (lease + acknowledgement) until they run dry.
    say(f"Part 1: the pod, starting from an empty store ({OWNERS_EMPTY_STORE:,} names claimed for the owners' rows)")
    bench.claim("o", OWNERS_EMPTY_STORE)
    owners = dict(NAMES=OWNERS_EMPTY_STORE, TOKEN_FORMAT=OWNER_TOKEN_FORMAT, SENDER="o")
    measure("pod_post", "1. pod POST (durable)", POD, lua(work, "pod_post", LUA_POST, "/hello/p", BODY))
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
    goal_rounds(bench)
    measure("hello_post", "1. hello-service POST (durable)", HELLO, lua(work, "hello_post", LUA_POST, "/hello/h", BODY))
    measure("hello_get", "1. hello-service GET", HELLO, lua(work, "hello_get", LUA_GET, "/hello/h"))
    bench.measure_world_send("world_post", "1. world-service send (durable, a batch of one)", "w")
    return idle, ready


def goal_rounds(bench: Bench) -> None:
    """The goal rows (pod POST, GET, reliable pairs) twice more, each round after the ceilings it is
    judged against (bare nginx; two hops to a stand-in world) measured again: with the rows of
    part 0 and 1, three alternating rounds, whose medians and ranges the goals report."""
    work, measure = bench.work, bench.measure
    for round_ in range(2, ALTERNATING_ROUNDS + 1):
        say(f"Part 1, round {round_} of {ALTERNATING_ROUNDS}: the ceilings, then the goal rows")
        bench.start_hello(world=f"unix:{work / 'stand-in.sock'}")
        measure(f"bare_static_r{round_}", f"0. bare nginx, static file, round {round_}", f"{BARE_NGINX}/static.txt",
                pod_load=False)
        measure(f"two_hop_r{round_}", f"0. two hops, round {round_}", f"{POD}/readyz", pod_load=False)
        bench.start_hello()
        measure(f"pod_post_r{round_}", f"1. pod POST (durable), round {round_}", POD,
                lua(work, f"pod_post_r{round_}", LUA_POST, f"/hello/p{round_}-", BODY))
        measure(f"pod_get_r{round_}", f"1. pod GET /hello/{{name}}, round {round_}", POD,
                lua(work, f"pod_get_r{round_}", LUA_GET, f"/hello/p{round_}-"))
        measure(f"pod_reliable_r{round_}", f"1. pod reliable read + confirm (requests), round {round_}", POD,
                lua(work, f"pod_reliable_r{round_}", LUA_RELIABLE, "/hello/r", NAMES=RELIABLE_NAMES,
                    QUERY="?limit=1"))


def pod_rows(bench: Bench, part: str, variant: str, round_: int) -> None:
    """The pod's POST then GET (draining what the POST stored), on names of their own."""
    prefix = f"/hello/{part}-{variant}-{round_}-"
    key = f"{part}_{variant}_%s_{round_}"
    bench.measure(key % "post", f"pod POST, {variant}, run {round_}", POD, lua(bench.work, key % "post", LUA_POST,
                                                                               prefix, BODY))
    bench.measure(key % "get", f"pod GET, {variant}, run {round_}", POD, lua(bench.work, key % "get", LUA_GET, prefix))


def later_parts(bench: Bench, no_traces: Path) -> tuple[int, int]:
    """Parts 2 to 6, each on a fresh world-service; returns world's peak RSS (KiB) on the big
    store and how many exports the traces-on rows sent."""
    work, measure = bench.work, bench.measure

    say(f"Part 2: a fresh world-service with {STORED_HELLOS:,} hellos over {STORED_NAMES:,} names "
        f"and {CLAIMED_NAMES:,} names claimed")
    # Over the default WORLD_STORE_CAP (1,000,000 waiting hellos) once part 3 adds its inboxes:
    # this store is meant to be big.
    bench.start_world(WORLD_STORE_CAP="10000000")
    bench.fill("store", "s", STORED_NAMES, STORED_HELLOS)
    bench.claim("c", CLAIMED_NAMES)
    owners = dict(NAMES=CLAIMED_NAMES, TOKEN_FORMAT=OWNER_TOKEN_FORMAT, SENDER="c")
    measure("big_pod_post", "1. pod POST (durable), big store", POD, lua(work, "big_pod_post", LUA_POST, "/hello/q", BODY))
    measure("big_pod_get", "1. pod GET, big store", POD, lua(work, "big_pod_get", LUA_GET, "/hello/q"))
    measure("big_owner_post", "1. pod POST as an owner, big store", POD,
            lua(work, "big_owner_post", LUA_OWNER_POST, "/hello/c", **owners))
    measure("big_owner_get", "1. pod GET of an owner's inbox, big store", POD,
            lua(work, "big_owner_get", LUA_OWNER_GET, "/hello/c", **owners))
    big_world_peak = rss_kib(bench.pid("world"), "VmHWM")

    say("Part 3: GET ?limit=1 against the number of hellos waiting in the inbox (on the same store)")
    for depth, inboxes in DEPTHS.items():
        bench.fill(f"depth{depth}", f"d{depth}-", inboxes, depth * inboxes)
    for depth, inboxes in DEPTHS.items():
        script = lua(work, f"counted_read{depth}", LUA_COUNTED, f"d{depth}-", METHOD="GET",
                     PATH="/hello/%s%d?limit=1", NAMES=inboxes, COUNT=DEPTH_READS, DONE=str(work / "done"))
        measure(f"depth{depth}", f"pod GET ?limit=1, {depth} waiting", POD, script)

    say("Part 4: a fresh world-service with WORLD_STORE_SYNC=false (sends answered before any fsync)")
    bench.start_world(WORLD_STORE_SYNC="false")
    measure("nosync_pod_post", "1. pod POST, syncing off", POD, lua(work, "nosync_pod_post", LUA_POST, "/hello/n", BODY))
    bench.measure_world_send("nosync_world_post", "1. world-service send, syncing off", "x")

    say("Part 5: traces off (the default build, no OTEL_* set), on (to a receiver that discards them), "
        "and not compiled in")
    # Alternating variants on fresh stores: each difference against the difference between runs
    # of the same variant. The receiver answers every export at once, as a collector that keeps up.
    receiver = Receiver(keep=False).start()
    try:
        traces_on = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        variants = {"default": (RELEASE, {}), "traces-on": (RELEASE, traces_on), "no-traces": (no_traces, {})}
        for round_ in range(1, ALTERNATING_ROUNDS + 1):
            for variant, (binaries, env) in variants.items():
                bench.start_world(binaries, **env)
                bench.start_hello(binaries, **env)
                pod_rows(bench, "traces", variant, round_)
        exports = receiver.exports
    finally:
        receiver.stop()
    if exports == 0:
        fail("the traces-on rows exported nothing to the receiver: they measured traces off")

    say("Part 6: hello -> world over loopback TCP against the Unix socket (the pod's default)")
    for round_ in range(1, ALTERNATING_ROUNDS + 1):
        for transport, world in (("tcp", WORLD), ("socket", None)):
            bench.start_world()
            bench.start_hello(world=world)
            pod_rows(bench, "transport", transport, round_)
    return big_world_peak, exports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each timed wrk run (default 10)")
    parser.add_argument("--quick", action="store_true",
                        help="parts 0 and 1 only (ceilings and the pod on an empty store); prints them, writes nothing")
    args = parser.parse_args()

    for tool in ("wrk", "nginx", "cargo"):
        if not shutil.which(tool):
            fail(f"{tool} is missing (Debian: apt-get install -y wrk nginx; Rust: rustup)")
    if not args.quick and not NX.exists():
        fail(f"{NX} is missing (the MongoDB part needs it): pip install -r tests/requirements.txt into .venv")
    busy = [port for port in PORTS if is_listening("127.0.0.1", port)]
    if busy:
        fail(f"ports {busy} on 127.0.0.1 are in use: stop what uses them (scripts/run-local.sh?) and retry")
    no_traces = build(args.quick)

    work = Path(tempfile.mkdtemp(prefix="hello-bench-"))
    work.chmod(0o755)
    bench = Bench(work, args.seconds)
    try:
        start_ceilings(bench)
        idle, ready = first_parts(bench)
        if args.quick:
            print("\n".join(report.summary(bench.results, bench.peak, big_store=False)))
            say("Quick benchmark done (nothing written)")
            return
        big_world_peak, exports = later_parts(bench, no_traces)
    finally:
        bench.stop()
    try:
        # Last: the pod on MongoDB (nx-27017), its store on loopback and MONGODB_DELAY_MS away.
        (work / "mongodb").mkdir()
        mongodb = measure_on_mongodb(work / "mongodb", args.seconds, MONGODB_DELAY_MS, RELEASE)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write(bench.results, bench.peak, idle, ready, big_world_peak, args.seconds, exports, mongodb)
    say("Benchmark done: docs/benchmarks.md, docs/benchmarks.svg and docs/benchmarks-latency.svg written")


if __name__ == "__main__":
    try:
        main()
    except WrkFailed as error:
        fail(str(error))
