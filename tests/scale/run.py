"""Scale and survive: N pods behind a balancer on one shared MongoDB-protocol store, under load,
while processes are killed and restarted. Prints one row per scenario:

    scenario | sent | acknowledged | delivered | confirmed | lost | lost past hello-service |
    duplicates | overdue leases | failed requests | 5xx

Every hello has a unique sender name, so each delivery is matched to the POST that made it.
Readers read the way users should: reliable reads (lease, then confirm with the receipt). The
kill-nginx scenario also runs plain GET readers, whose answers Nginx may take with it when it dies;
reader-vanishes adds readers that never confirm and GETs that reset their connection unread.
- sent: hellos a client tried to send (retried with the same Idempotency-Key until a 201 or give-up);
- acknowledged: hellos answered 201; delivered: distinct hellos some read returned;
- confirmed: distinct hellos whose reliable read was confirmed (204);
- lost: acknowledged but never delivered, beyond those counted in the next column (must be 0);
- lost past hello-service: hellos hello-service put in a GET answer that no GET reader received
  (Nginx died holding them): what a GET cannot promise, counted, never hidden;
- duplicates: deliveries beyond the first of a hello (a crash cut a read short, or a
  confirmation came too late);
- overdue leases: of the leases a probe took and never confirmed (in inboxes of its own, beside
  the load), those whose hello was still hidden twice the lease after it was taken: housekeeping
  that fell behind (must be 0);
- failed requests: answers other than 2xx, and requests that got no answer at all;
- 5xx: of those, answers 500-599 (each 503 must carry Retry-After).

Usage: python3 -m tests.scale.run [--quick] [--pods N] [--seconds S] [--only a,b] [--bin-dir DIR] [--markdown FILE]
Exit status 0 only when every scenario holds its expectations.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.scale.load import GET_READERS, LEASE_MS, PROBE_INBOXES, READERS, SENDERS, LeaseProbe, Ledger, Load
from tests.scale.previous import PREVIOUS_VERSION, previous_release
from tests.scale.scenarios import GET_READERS_IN, SCENARIOS, switch_to
from tests.scale.waiting import WAKE_INTERVAL_MS
from tests.support.cluster import Cluster
from tests.support.pod import ROOT, this_checkout
from tests.support.store import NX


@dataclass
class Row:
    scenario: str
    sent: int
    acknowledged: int
    delivered: int
    confirmed: int
    lost: int
    lost_past_hello: int
    duplicates: int
    overdue: int
    failed: int
    server_errors: int
    notes: list[str]
    ok: bool


def get_hellos_answered(cluster: Cluster) -> float:
    """hello_hellos_delivered_total{read="get"}, summed over the pods (each pod's hello-service,
    scraped on its own port as Prometheus would: nginx does not serve /metrics)."""
    total = 0.0
    for pod in cluster.pods:
        status, _, body = call_at(pod.address, pod.hello_port, "GET", "/metrics")
        assert status == 200, f"{pod.name} /metrics: {status}"
        for line in body.decode().splitlines():
            if line.startswith('hello_hellos_delivered_total{read="get"}'):
                total += float(line.split()[-1])
    return total


def call_at(host: str, port: int, method: str, path: str):
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def run_scenario(cluster: Cluster, name: str, seconds: float, action, get_readers: int = 0,
                 old_release_pods: bool = False) -> Row:
    ledger = Ledger()
    load = Load(cluster.lb_port, name, ledger, get_readers, old_release_pods)
    get_answered_before = get_hellos_answered(cluster) if get_readers else 0.0
    probe = LeaseProbe(cluster.lb_port, name)
    started = time.monotonic()
    load.start(max_per_sender=100_000)
    probe.start()
    notes: list[str] = []
    expectations: list[tuple[bool, str]] = []
    # The action disturbs the cluster while the load runs, then returns when the disturbance is over.
    disturbance = action(cluster, ledger, seconds, notes, expectations) if action else None
    remaining = seconds - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    load.stop_sending.set()
    load.stop()
    probe.stop()
    cluster.wait_all_ready(timeout=90)
    probe.drain()
    load.drain(not_before=time.monotonic() + LEASE_MS / 1000 + 0.5)
    delivered_names = set(ledger.deliveries)
    lost = ledger.acknowledged - delivered_names
    strangers = delivered_names - ledger.sent
    # Hellos hello-service put in GET answers that no GET reader received: Nginx took them along.
    past_hello = 0
    if get_readers:
        past_hello = max(0, int(get_hellos_answered(cluster) - get_answered_before) - ledger.get_received)
    lost_here = max(0, len(lost) - past_hello)
    expectations += [
        (lost_here == 0, f"{lost_here} acknowledged hellos lost (beyond {past_hello} lost past hello-service), "
                         f"e.g. {sorted(lost)[:3]}"),
        (ledger.confirmed <= delivered_names, "a hello confirmed that no read returned"),
        (not strangers, f"{len(strangers)} delivered hellos nobody sent"),
        (ledger.missing_retry_after == 0, f"{ledger.missing_retry_after} answers 429/503 without Retry-After"),
        (not ledger.problems, "; ".join(ledger.problems[:3])),
        (len(ledger.acknowledged) > 0, "nothing was acknowledged"),
        (probe.overdue == 0, f"{probe.overdue} overdue leases: {probe.overdue_examples[:2]}"),
        (probe.checked > 0, "the lease probe checked no lease: housekeeping was not observed"),
    ]
    if disturbance is not None:
        expectations.append(disturbance(ledger))
    failures = [message for ok, message in expectations if not ok]
    if ledger.balancer_503:
        notes.append(f"{ledger.balancer_503} of the 503s from the balancer (no pod answered)")
    if ledger.old_release_answers:
        notes.append(f"{ledger.old_release_answers} reliable reads or confirmations answered by a "
                     f"{PREVIOUS_VERSION} pod (no such endpoint there) and retried")
    if ledger.out_of_order:
        notes.append(f"{ledger.out_of_order} redelivered hellos came after newer ones")
    notes.append(f"{probe.checked} leases left unconfirmed and looked at again 2x the lease later; "
                 f"{probe.overdue} still hidden")
    notes += [f"FAILED: {message}" for message in failures]
    if past_hello:
        notes.append(f"{past_hello} hellos left hello-service in GET answers that no GET reader received "
                     "(Nginx died holding them): what a plain GET cannot promise")
    return Row(name, len(ledger.sent), len(ledger.acknowledged), len(delivered_names & ledger.sent),
               len(ledger.confirmed & ledger.sent), lost_here, past_hello, ledger.duplicates, probe.overdue,
               ledger.failed, ledger.server_errors, notes, not failures)


def table(rows: list[Row]) -> str:
    header = ["scenario", "sent", "acknowledged", "delivered", "confirmed", "lost", "lost past hello-service",
              "duplicates", "overdue leases", "failed requests", "5xx"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.scenario, row.sent, row.acknowledged, row.delivered, row.confirmed, row.lost,
                 row.lost_past_hello, row.duplicates, row.overdue, row.failed, row.server_errors]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short scenarios (the test suite's subset)")
    parser.add_argument("--pods", type=int, default=3)
    parser.add_argument("--seconds", type=float, help="load per scenario (default 6 with --quick, else 30)")
    parser.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    parser.add_argument("--bin-dir", default=os.environ.get("BIN_DIR", str(ROOT / "target" / "release")))
    parser.add_argument("--nx", default=str(NX))
    parser.add_argument("--markdown", help="also write the table and notes to this file")
    args = parser.parse_args()
    seconds = args.seconds or (6.0 if args.quick else 30.0)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    bin_dir = Path(args.bin_dir)
    for binary in ("hello-service", "world-service"):
        if not (bin_dir / binary).exists():
            print(f"error: {bin_dir / binary} is missing: build it (cargo build --release) or pass --bin-dir",
                  file=sys.stderr)
            return 2
    if not Path(args.nx).exists():
        print(f"error: {args.nx} is missing: pip install -r tests/requirements.txt into .venv", file=sys.stderr)
        return 2

    # The previous release's pods are built with the profile of this checkout's binaries.
    previous = (previous_release("dev" if bin_dir.name == "debug" else "release")
                if "rolling-update" in names else None)

    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    cluster = Cluster(work=work, release=this_checkout(bin_dir), nx=Path(args.nx),
                      pod_count=args.pods,
                      hello_env={
                          # Every client arrives through the balancer from one address: lift the
                          # per-client limit (tests/hostile checks it with the defaults).
                          "HELLO_RATE_LIMIT_PER_SECOND": "1000000",
                          "HELLO_RATE_LIMIT_BURST": "1000000",
                          "HELLO_WAIT_PER_CLIENT": "1000",
                      },
                      # world's /metrics on <pod address>:8082, for waiting-readers' store commands.
                      world_port=8082,
                      world_env={"WORLD_LEASE_MS": str(LEASE_MS),
                                 # What waiting-readers divides the store's commands by.
                                 "WORLD_WAKE_INTERVAL_MS": str(WAKE_INTERVAL_MS)})
    print(f"==> Starting {args.pods} pods (nginx + hello + world on 127.0.0.2..), a balancer and nx-27017 "
          f"({bin_dir}); logs in {work / 'logs'}", flush=True)
    started = time.monotonic()
    succeeded = False
    try:
        cluster.start()
        for name in names:
            get_readers = GET_READERS if name in GET_READERS_IN else 0
            if name == "rolling-update":
                assert previous is not None
                print(f"==> {name}: every pod replaced by a {PREVIOUS_VERSION} pod first (no load)", flush=True)
                switch_to(cluster, previous)
            print(f"==> {name}: {seconds:.0f} s of load ({SENDERS} senders, {READERS} reliable readers"
                  + (f", {get_readers} GET readers" if get_readers else "")
                  + f"; a lease probe on {PROBE_INBOXES} inboxes)", flush=True)
            row = run_scenario(cluster, name, seconds, SCENARIOS[name], get_readers,
                               old_release_pods=name == "rolling-update")
            rows.append(row)
            print(f"    sent {row.sent}, acknowledged {row.acknowledged}, delivered {row.delivered}, "
                  f"confirmed {row.confirmed}, lost {row.lost}, lost past hello-service {row.lost_past_hello}, "
                  f"duplicates {row.duplicates}, overdue leases {row.overdue}, failed requests {row.failed}, "
                  f"5xx {row.server_errors}"
                  + "".join(f"\n    - {note}" for note in row.notes), flush=True)
        succeeded = all(row.ok for row in rows)
    finally:
        cluster.stop()
    output = table(rows)
    notes = "\n".join(f"- {row.scenario}: {note}" for row in rows for note in row.notes)
    print("\n" + output + "\n\n" + notes)
    if args.markdown:
        Path(args.markdown).write_text(
            f"Command: `{' '.join(['python3 -m tests.scale.run'] + sys.argv[1:])}` ({args.pods} pods, {seconds:.0f} s of load "
            f"per scenario, {SENDERS} senders, {READERS} reliable readers, and {GET_READERS} GET readers in "
            f"{', '.join(sorted(GET_READERS_IN))})\n\n{output}\n\n{notes}\n")
    elapsed = time.monotonic() - started
    if succeeded:
        shutil.rmtree(work, ignore_errors=True)
        print(f"\nscale: all {len(rows)} scenarios held (nothing acknowledged was lost) in {elapsed:.0f} s")
        return 0
    print(f"\nscale: FAILED (see the notes above; logs kept in {work / 'logs'})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
