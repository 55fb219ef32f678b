"""bench/run.py's report: its tables, the goals beside the figures (the goal rows' medians and
ranges over three alternating rounds), the charts, and docs/benchmarks.md."""

import os
import platform
import statistics
import time
from pathlib import Path

from bench.harness import (ALTERNATING_ROUNDS, CLAIMED_NAMES, DEPTH_READS, DEPTHS, OWNERS_EMPTY_STORE, ROOT,
                           STATIC_BYTES, STORED_HELLOS, STORED_NAMES)
from bench.measure import image_sizes
from bench.mongo import table as mongodb_table
from bench.wrk import CONNECTIONS, THREADS

HEADER = ["| target | req/s | p50 ms | p99 ms | requests | store commands a request | cores busy |",
          "|---|---:|---:|---:|---:|---:|---:|"]
PART0 = ["bare_static", "static", "one_hop", "two_hop", "bare"]
PART1 = ["pod_post", "pod_get", "pod_reliable", "owner_post", "owner_get", "hello_post", "hello_get", "world_post"]
# Part 5's variants, in the order they alternate: (key, name in the tables).
TRACES = [("default", "traces off"), ("traces-on", "traces on"), ("no-traces", "no traces compiled in")]


def table_row(result: dict) -> str:
    commands = result.get("commands_per_request")
    busy = result.get("cores_busy")
    return (f"| {result['label']} | {result['rps']:,.0f} | {result['p50']:.2f} | {result['p99']:.2f} | "
            f"{result['requests']:,} | {'' if commands is None else f'{commands:.2f}'} | "
            f"{'' if busy is None else f'{busy:.0%}'} |")


def rounds(results: dict, key: str) -> list[dict]:
    """A goal row's alternating rounds: the row of part 1, then its repeats."""
    return [results[key], *[results[f"{key}_r{r}"] for r in range(2, ALTERNATING_ROUNDS + 1)]]


def rate(row: dict, key: str) -> float:
    """What a goal row delivers a second: pairs for the reliable row, else requests."""
    return row["pairs_per_s"] if key == "pod_reliable" else row["rps"]


def spread(values: list[float], digits: int = 3) -> str:
    """A median with its range: 0.254 (0.249–0.262)."""
    median = statistics.median(values)
    return f"{median:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def ratios(results: dict, key: str, ceiling: str) -> list[float]:
    """A goal row against a ceiling measured in the same round, round by round."""
    return [rate(row, key) / top["rps"] for row, top in zip(rounds(results, key), rounds(results, ceiling))]


def goal_table(results: dict, peak: dict, big_store: bool) -> list[str]:
    """The goals: each measured value beside its goal, and whether it is met. The goal rows are
    medians of three rounds alternating with both ceilings, with their ranges; ratios have three
    decimals, so that one just below its goal does not print as the goal itself."""
    bare = results["bare_static"]["rps"]
    rows: list[tuple[str, str, str, bool | None]] = []
    for key, what in (("static", "pod's nginx, static file"), ("one_hop", "one hop (nginx -> hello)")):
        rows.append((f"ceiling: {what} / bare nginx", f"{results[key]['rps'] / bare:.3f}", "", None))
    rows.append(("ceiling: two hops (nginx -> hello -> world, no store) / bare nginx",
                 spread(ratios(results, "two_hop", "bare_static")), "", None))
    goals = {"pod_get": ("pod GET", 0.25, None), "pod_post": ("pod durable POST", 0.25, 0.8),
             "pod_reliable": ("reliable read + confirm pairs", 0.15, None)}
    for key, (what, of_bare, of_two_hop) in goals.items():
        per_second = [rate(row, key) for row in rounds(results, key)]
        rows.append((f"{what}, per second", spread(per_second, 0), "", None))
        against_bare = ratios(results, key, "bare_static")
        median = statistics.median(against_bare)
        rows.append((f"{what} / bare nginx", spread(against_bare), f"≥ {of_bare}", median >= of_bare))
        against_two_hop = ratios(results, key, "two_hop")
        median = statistics.median(against_two_hop)
        rows.append((f"{what} / two-hop ceiling", spread(against_two_hop),
                     f"≥ {of_two_hop}" if of_two_hop else "", median >= of_two_hop if of_two_hop else None))
    for key in ("pod_get", "pod_post"):
        p99s = [row["p99"] for row in rounds(results, key)]
        rows.append((f"p99, {results[key]['label'][3:]}", f"{spread(p99s, 2)} ms", "≤ 10 ms",
                     statistics.median(p99s) <= 10))
    for key in ("owner_get", "owner_post"):
        p99 = results[key]["p99"]
        rows.append((f"p99, {results[key]['label'][3:]} (one run)", f"{p99:.2f} ms", "≤ 10 ms", p99 <= 10))
    for service in ("hello", "world"):
        mib = peak[service] / 1024
        rows.append((f"{service}-service RSS peak under load", f"{mib:.1f} MiB", "< 16 MiB", mib < 16))
    if big_store:
        for key in ("pod_post", "pod_get", "owner_post", "owner_get"):
            value = results[f"big_{key}"]["p99"] / results[key]["p99"]
            rows.append((f"p99 with {STORED_HELLOS:,} stored and {CLAIMED_NAMES:,} claimed / empty store, "
                         f"{results[key]['label'][3:]}", f"{value:.2f}x", "≤ 1.5x", value <= 1.5))
    verdict = {True: "met", False: "**not met**", None: ""}
    return [f"Goal rows: median of {ALTERNATING_ROUNDS} rounds (range), each round against the ceilings "
            "measured just before it.", "",
            "| measure | value | goal | |", "|---|---:|---:|---|",
            *[f"| {what} | {value} | {goal} | {verdict[met]} |" for what, value, goal, met in rows]]


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


def summary(results: dict, peak: dict, big_store: bool) -> list[str]:
    """Parts 0 and 1, and the goals: what --quick prints."""
    repeats = [f"{key}_r{r}" for r in range(2, ALTERNATING_ROUNDS + 1)
               for key in ("bare_static", "two_hop", "pod_post", "pod_get", "pod_reliable")]
    return [*HEADER, *[table_row(results[key]) for key in PART0 + PART1 + repeats], "",
            *goal_table(results, peak, big_store)]


def runs(results: dict, part: str, variant: str, kind: str, field: str = "rps") -> list[float]:
    return [results[f"{part}_{variant}_{kind}_{r}"][field] for r in range(1, ALTERNATING_ROUNDS + 1)]


def alternated_rows(results: dict, part: str, variants: list[str]) -> list[str]:
    """Every row of a part that alternated `variants`, round by round."""
    return [*HEADER, *[table_row(results[f"{part}_{variant}_{kind}_{r}"]) for r in range(1, ALTERNATING_ROUNDS + 1)
                       for variant in variants for kind in ("post", "get")]]


def comparison(results: dict, part: str, new: tuple[str, str], old: tuple[str, str]) -> list[str]:
    """How variant `new` compares with `old` (each (key, name)), medians of the rounds, beside each
    one's run-to-run spread: a difference is measurable only if it is larger than those."""
    (new_key, a), (old_key, b) = new, old

    def median(variant: str, kind: str, field: str = "rps") -> float:
        return statistics.median(runs(results, part, variant, kind, field))

    def spread(variant: str, kind: str) -> float:
        values = runs(results, part, variant, kind)
        return (max(values) - min(values)) / statistics.median(values)

    return [
        f"| path | {a} / {b} (req/s, medians of {ALTERNATING_ROUNDS}) | p99 {a} / {b} (medians) | "
        f"run-to-run spread, {a} | run-to-run spread, {b} |",
        "|---|---:|---:|---:|---:|",
        *[f"| pod {kind.upper()} | {median(new_key, kind) / median(old_key, kind):.1%} | "
          f"{median(new_key, kind, 'p99') / median(old_key, kind, 'p99'):.2f}x | "
          f"{spread(new_key, kind):.1%} | {spread(old_key, kind):.1%} |" for kind in ("post", "get")],
    ]


def write(results: dict, peak: dict, idle: dict, ready: dict, big_world_peak: int, seconds: int,
          exports: int, mongodb: tuple[float, float, dict]) -> None:
    """docs/benchmarks.md and its two charts, from a full run; prints the document."""
    def ratio(a: str, b: str) -> float:
        return results[a]["rps"] / results[b]["rps"]

    sizes = image_sizes()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    row = table_row
    header = HEADER
    lines = [
        "# Benchmarks",
        "",
        f"Made by `python3 -m bench.run` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores ({cpu}), "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.system()} {platform.release()}. "
        f"wrk, {THREADS} threads, {CONNECTIONS} connections, {seconds} s per timed row, client and servers sharing the cores, "
        "all on 127.0.0.1. Every row below had 0 non-2xx answers and 0 socket errors (the command fails otherwise). "
        "POSTs are durable (synced to disk before the 201; the embedded store commits concurrent sends together) "
        "and spread over 100,000 names; each GET row then reads the names its POST row filled, so reads "
        "drain real inboxes (lease, answer, acknowledgement) until they run dry, and later ones find them empty. "
        f"The owners' rows send as, and read the inboxes of, {OWNERS_EMPTY_STORE:,} claimed names with their tokens. "
        "The rows of world-service alone call its internal API as hello-service does: `POST /v1/hellos`, "
        "a batch holding one hello.",
        "",
        "The goal rows (pod POST, GET, reliable pairs) run three times, each round after the bare nginx and the "
        "two-hop ceiling are measured again; the goals give their medians and ranges, against both ceilings of "
        "the same round, so that a reader can tell the machine's drift from the code. The store commands a request "
        "are world's `world_store_commands_total` during the row (the embedded store's commits and reads), "
        "divided by its requests; cores busy is the share of the machine's CPU time that was not idle during the "
        "row (all processes, wrk's too; time waiting on the disk counts as idle): the ceilings, bound by the CPU, "
        "reach 97-100%, and a row well below them waited on something else (the store's syncs, one thread). "
        "Other ratios are against the first row: a bare nginx (2 workers, no access log) serving a "
        f"{STATIC_BYTES:,}-byte static file, what nginx itself can do on this machine. The pod's own nginx "
        "configuration writes a JSON access log line per request; the one- and two-hop rows are the "
        "architecture's ceilings (the two-hop row's world is a stand-in answering a constant: no store work). "
        "Where the CPU of a request goes, what was changed for it, and what limits each figure now: "
        "[performance.md](performance.md).",
        "",
        "![Requests per second](benchmarks.svg)",
        "",
        *summary(results, peak, big_store=True),
        "",
        "| process | RSS idle | RSS peak under the load of part 1 | ready after start |",
        "|---|---:|---:|---:|",
        f"| hello-service | {idle['hello'] / 1024:.1f} MiB | {peak['hello'] / 1024:.1f} MiB | {ready['hello'] * 1000:.1f} ms |",
        f"| world-service | {idle['world'] / 1024:.1f} MiB | {peak['world'] / 1024:.1f} MiB | {ready['world'] * 1000:.1f} ms |",
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
    off, on, absent = TRACES
    lines += [
        "",
        "## Traces off: what it costs to have them compiled in",
        "",
        "The default build can export OpenTelemetry traces; with no `OTEL_*` variable set (as in every other "
        "row) it exports none. Three variants alternate on fresh stores, "
        f"{ALTERNATING_ROUNDS} rounds each: that build with traces off; the same build with traces on (next "
        "section); and a build without the `traces` feature (`--no-default-features`: no exporter, no "
        "propagation code at all). A difference is measurable only if it is larger than the spread between "
        "runs of the same variant.",
        "",
        *alternated_rows(results, "traces", [key for key, _ in TRACES]),
        "",
        *comparison(results, "traces", off, absent),
        "",
        "## Traces on: what exporting them costs",
        "",
        "The default build with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP receiver on loopback "
        "(in the benchmark's own process, sharing the cores) that reads every export and discards it, as a "
        "collector that keeps up would; every request is sampled, as by default. Against the same build with "
        f"traces off, in the rounds above. The receiver took {exports:,} exports during the traces-on rows.",
        "",
        *comparison(results, "traces", on, off),
        "",
        "## hello to world: Unix socket against loopback TCP",
        "",
        "In the pod, hello-service calls world-service over a Unix socket in a volume both mount "
        "(`WORLD_LISTEN_SOCKET`, `HELLO_WORLD_URL=unix:...`); world listens on TCP only where `WORLD_LISTEN` "
        "asks it to (never in the pod). The same binaries with hello pointed at world's TCP port instead, on "
        f"fresh stores, alternating, {ALTERNATING_ROUNDS} rounds each.",
        "",
        *alternated_rows(results, "transport", ["tcp", "socket"]),
        "",
        *comparison(results, "transport", ("socket", "socket"), ("tcp", "TCP")),
    ]
    delay_ms, round_trip, on_mongodb = mongodb
    lines += [
        "",
        f"## On MongoDB: the store on loopback and {delay_ms:g} ms away",
        "",
        "Last, one pod on nx-27017 (a MongoDB wire-protocol server over SQLite; no MongoDB server runs here), "
        "a fresh database for each placement of the store: next to world on loopback, then behind a proxy that "
        f"holds every chunk {delay_ms:g} ms in each direction, as a MongoDB on another node of the cluster would be "
        "(`bench/mongo.py`). nx does about 1,600 inserts a second and models no journal wait, so its req/s say "
        "little about a real MongoDB; the design is judged by the store commands a request, which a store "
        "0.5-1 ms away, each write waiting for a majority's journal, multiplies into latency. The GET row reads "
        "the POST row's names (most reads find an empty inbox: a lease without a write); the reliable row reads "
        "inboxes filled beforehand through world's API. A request over wrk's 2 s is counted as timed out, not "
        "failed.",
        "",
        *mongodb_table(round_trip, on_mongodb),
    ]
    if sizes:
        lines += ["", "## Images", "", "| image | size |", "|---|---:|"] + [
            f"| {name}-service | {size:.1f} MB |" for name, size in sizes.items()]
    else:
        lines += ["", "Image sizes: not measured (build the images first: `tests/containers/run.sh`)."]
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(lines) + "\n")
    svg_chart(f"Requests per second, {CONNECTIONS} connections (higher is better)",
              [(results[key]["label"], results[key]["rps"]) for key in [*PART0, *PART1, "nosync_pod_post",
                                                                        "nosync_world_post"]],
              ROOT / "docs" / "benchmarks.svg")
    latency_rows = []
    for key, label in [("pod_post", "POST, empty store"), ("big_pod_post", "POST, big store"),
                       ("pod_get", "GET, empty store"), ("big_pod_get", "GET, big store"),
                       *[(f"depth{depth}", f"GET ?limit=1, {depth} waiting") for depth in DEPTHS]]:
        latency_rows += [(f"{label}: p50", results[key]["p50"]), (f"{label}: p99", results[key]["p99"])]
    svg_chart(f"Pod latency in ms, {CONNECTIONS} connections (lower is better)", latency_rows,
              ROOT / "docs" / "benchmarks-latency.svg", " ms")
    print("\n".join(lines[8:]))
