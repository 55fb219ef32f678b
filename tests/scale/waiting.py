"""The waiting-readers scenario (a row of run.py's table like the others): readers that wait for
their hellos on every pod, hellos sent through every pod, and one pod's hello and world killed
with SIGKILL while readers wait there.

- Waiters: WAITERS_PER_POD on each pod through its own nginx and BALANCER_WAITERS through the
  balancer, each looping on a name of its own: half GET /hello/{name}?wait=20, half reliable
  reads (POST /hello/{name}/reads?wait=20, then confirmed). QUIET_PER_ROUTE names of each route
  get nothing until the end, so that their waits run out (an empty answer after 20 s).
- Senders: hellos to the other names, each attempt through a route picked at random (the
  balancer or a pod's own nginx); a retry keeps its Idempotency-Key, so it may cross pods.
- A steady part (the store's commands counted on every world over it), then kill -9 of one
  pod's hello and world, restarted a second later as the kubelet would, while the sends go on.
- At the end every waiter is sent one closing hello and stops once it has it: every waiter, the
  restarted pod's included, must be woken. Its inbox is then drained with the load's.

Checked (a failure fails the row): every waiting request answered within its wait +
ANSWER_BOUND_S, with hellos, with an empty list once its wait ran out, or with an error only if
it was on the killed pod during the kill; every waiter woken by its closing hello; a hello
delivered again only after a delivery the guarantees let come back (a reliable read whose
confirmation did not land; a GET answered by the killed pod just before the kill, whose
acknowledgement died with it); every pod lets go of its waiters. lost and overdue leases are
run.py's checks. Printed, never checked (they depend on the machine's speed): the store's
commands per wake interval, and the wake latency from a send's 201 to its reader's answer.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass, field

from tests.scale.load import GIVE_UP_S, Ledger, call, hello_path
from tests.support.cluster import Cluster
from tests.support.processes import wait_until

TAG = "waiting-readers"
WAIT_S = 20
# A waiting read answers within its wait and this (its first lease, the answer's way back).
ANSWER_BOUND_S = 5
WAITERS_PER_POD = 30
BALANCER_WAITERS = 12
QUIET_PER_ROUTE = 2
SENDERS = 4
SEND_PAUSE_S = 0.05  # between one sender's hellos: most arrive while their reader waits
KILLED_POD = 1
WAKE_INTERVAL_MS = 250  # WORLD_WAKE_INTERVAL_MS, set so by run.py
# A GET answered this long before its pod's hello and world were killed may not have been
# acknowledged yet (the settle window, 200 ms, then the call to world): it may come again.
GET_ACK_WINDOW_S = 2.0


def scrape(url: str) -> dict[str, float]:
    """Prometheus text at `url`: {series: value}."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        lines = answer.read().decode().splitlines()
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2]) for line in lines if line and line[0] != "#"}


def store_commands(cluster: Cluster) -> dict[str, float]:
    """world_store_commands_total by command, summed over every pod's world."""
    total: dict[str, float] = {}
    prefix = 'world_store_commands_total{command="'
    for pod in cluster.pods:
        for name, value in scrape(pod.world_url + "/metrics").items():
            if name.startswith(prefix):
                command = name[len(prefix):].split('"')[0]
                total[command] = total.get(command, 0.0) + value
    return total


def waiting_now(pod) -> int:
    return int(scrape(pod.hello_url + "/metrics").get("hello_waiting_readers", 0))


def percentiles(values: list[float]) -> str:
    if not values:
        return "none measured"
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
    return f"n={len(ordered)}, p50 {at(0.5):.0f} ms, p99 {at(0.99):.0f} ms, max {ordered[-1]:.0f} ms"


@dataclass
class Waiter:
    name: str
    kind: str  # "get" or "reliable"
    route: str  # the pod it reads through (its name), or "balancer"
    host: str
    port: int
    quiet: bool
    closing: str  # the sender of its closing hello
    woken: bool = False  # it received its closing hello
    first_started: float | None = None  # when its first waiting read began
    answers: list = field(default_factory=list)  # (started, ended, status, pod, hellos)


@dataclass
class Delivery:
    hello: str
    kind: str
    pod: str | None  # X-Pod-Name of the answer: the hello-service that took the lease
    started: float
    answered: float
    confirmed: int | None = None  # a reliable read's confirmation: its last status (None: no answer)


class WaitingReaders:
    def __init__(self, cluster: Cluster, ledger: Ledger):
        self.cluster, self.ledger = cluster, ledger
        self.lock = threading.Lock()
        self.routes = [("balancer", "127.0.0.1", cluster.lb_port)] + [
            (pod.name, pod.address, pod.nginx_port) for pod in cluster.pods]
        self.waiters: list[Waiter] = []
        for route, host, port in self.routes:
            count = BALANCER_WAITERS if route == "balancer" else WAITERS_PER_POD
            for k in range(count):
                index = len(self.waiters)
                # Some names are spelled with a non-ASCII letter, sent percent-encoded.
                stem = "zoë" if index % 7 == 0 else "w"
                self.waiters.append(Waiter(f"{TAG}.{stem}-{route}-{k}", "get" if k % 2 else "reliable",
                                           route, host, port, quiet=k < QUIET_PER_ROUTE,
                                           closing=f"{TAG}.closing-{index}"))
        ledger.more_inboxes += [waiter.name for waiter in self.waiters]
        self.deliveries: list[Delivery] = []
        self.acknowledged: dict[str, tuple[float, str | None]] = {}  # sender: (its POST began, pod)
        self.stop_sending = threading.Event()
        self.deadline = time.monotonic() + 300  # moved closer once the closing hellos are sent

    # ---- sending -------------------------------------------------------------------------
    def send(self, sender: str, to: str, rng: random.Random) -> None:
        """One hello, retried with the same key until a 201 (or GIVE_UP_S), each attempt through
        a route picked at random."""
        body = json.dumps({"from": sender}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"{sender}-key"}
        with self.ledger.lock:
            self.ledger.sent.add(sender)
        give_up = time.monotonic() + GIVE_UP_S
        while time.monotonic() < give_up:
            _, host, port = rng.choice(self.routes)
            began = time.monotonic()
            status, answer_headers, _ = call(port, "POST", hello_path(to), body, headers, host=host)
            self.ledger.answer(status, answer_headers)
            if status == 201:
                with self.ledger.lock:
                    self.ledger.acknowledged.add(sender)
                    self.ledger.acknowledged_at[sender] = time.monotonic()
                with self.lock:
                    self.acknowledged[sender] = (began, answer_headers.get("X-Pod-Name"))
                return
            if status is not None and 400 <= status < 500 and status not in (409, 429):
                with self.ledger.lock:
                    self.ledger.problems.append(f"POST {to} from {sender}: unexpected {status}")
                return
            retry_after = answer_headers.get("Retry-After") if answer_headers else None
            time.sleep(min(float(retry_after), 0.5) if retry_after else 0.1)

    def _sender(self, index: int) -> None:
        rng = random.Random(500 + index)
        names = [waiter.name for waiter in self.waiters if not waiter.quiet]
        for seq in range(1, 100_000):
            if self.stop_sending.is_set():
                return
            self.send(f"{TAG}.w{index}-{seq}", rng.choice(names), rng)
            time.sleep(SEND_PAUSE_S)

    def _send_closing(self, waiters: list[Waiter], index: int) -> None:
        rng = random.Random(900 + index)
        for waiter in waiters:
            self.send(waiter.closing, waiter.name, rng)

    # ---- waiting -------------------------------------------------------------------------
    def _wait(self, waiter: Waiter) -> None:
        """Waits again as soon as answered, until its closing hello came (or the deadline)."""
        get = waiter.kind == "get"
        path = hello_path(waiter.name) + ("" if get else "/reads") + f"?limit=100&wait={WAIT_S}"
        while not waiter.woken and time.monotonic() < self.deadline:
            started = time.monotonic()
            waiter.first_started = waiter.first_started or started
            # A read that has no answer by then is counted as late (it hung).
            status, headers, body = call(waiter.port, "GET" if get else "POST", path, host=waiter.host,
                                         timeout=WAIT_S + ANSWER_BOUND_S + 5)
            ended = time.monotonic()
            self.ledger.answer(status, headers)
            pod = headers.get("X-Pod-Name") if headers else None
            if status != (200 if get else 201):
                waiter.answers.append((started, ended, status, pod, []))
                retry_after = headers.get("Retry-After") if headers else None
                time.sleep(min(float(retry_after), 0.5) if retry_after else 0.2)
                continue
            answer = json.loads(body)
            hellos = [hello["from"] for hello in answer["hellos"]]
            waiter.answers.append((started, ended, status, pod, hellos))
            confirmed = self._confirm(waiter, answer["receipt"], hellos) if answer.get("receipt") else None
            with self.lock:
                self.deliveries += [Delivery(hello, waiter.kind, pod, started, ended, confirmed) for hello in hellos]
            with self.ledger.lock:
                for hello in hellos:
                    self.ledger.deliveries[hello] += 1
            waiter.woken = waiter.closing in hellos

    def _confirm(self, waiter: Waiter, receipt: str, hellos: list[str]) -> int | None:
        """Confirms through the waiter's route, repeated (it is idempotent) until 204, 404 or 410
        or 10 s: the last status. Hellos not confirmed come back after the lease: a duplicate."""
        status = None
        give_up = time.monotonic() + 10
        while time.monotonic() < give_up:
            status, headers, _ = call(waiter.port, "DELETE", f"{hello_path(waiter.name)}/reads/{receipt}",
                                      host=waiter.host)
            self.ledger.answer(status, headers)
            if status == 204:
                with self.ledger.lock:
                    self.ledger.confirmed.update(hellos)
            if status in (204, 404, 410):
                return status
            time.sleep(0.1)
        return status

    # ---- the scenario --------------------------------------------------------------------
    def run(self, seconds: float, notes: list[str], expectations: list) -> object:
        cluster = self.cluster
        killed = cluster.pods[KILLED_POD % len(cluster.pods)]
        print(f"    {len(self.waiters)} waiting readers ({WAITERS_PER_POD} per pod through its nginx, "
              f"{BALANCER_WAITERS} through the balancer); kill -9 of {killed.name}'s hello and world "
              f"mid-wait; about {WAIT_S + 5} s", flush=True)
        readers = [threading.Thread(target=self._wait, args=(waiter,), daemon=True) for waiter in self.waiters]
        for thread in readers:
            thread.start()
        # Everyone waiting before anything is sent: each send then wakes a waiting reader.
        waiting = 0
        settle = time.monotonic() + 30
        while time.monotonic() < settle:
            waiting = sum(waiting_now(pod) for pod in cluster.pods)
            if waiting >= len(self.waiters):
                break
            time.sleep(0.2)
        expectations.append((waiting >= len(self.waiters),
                             f"only {waiting} of {len(self.waiters)} readers were waiting before the sends"))

        senders = [threading.Thread(target=self._sender, args=(index,), daemon=True) for index in range(SENDERS)]
        for thread in senders:
            thread.start()
        time.sleep(0.5)
        commands_before, steady_from = store_commands(cluster), time.monotonic()
        time.sleep(max(4.0, seconds / 5))
        commands_after, steady_to = store_commands(cluster), time.monotonic()

        waiting_on_killed = waiting_now(killed)
        kill_at = time.monotonic()
        for process in (killed.hello, killed.world):
            process.signal_group(signal.SIGKILL)
        for process in (killed.hello, killed.world):
            process.wait(10)
        cluster.restart_container(killed.world, delay=1.0)
        cluster.restart_container(killed.hello, delay=0.0)
        # Its own /readyz first: the endpoints thread may not have seen it go yet.
        wait_until(lambda: killed.ready() and killed in cluster.ready_pods(), 60, f"{killed.name} to be ready again")
        ready_at = time.monotonic()
        notes.append(f"kill -9 {killed.name} hello and world with {waiting_on_killed} readers waiting there; "
                     f"restarted after 1 s, ready again {ready_at - kill_at:.1f} s after the kill")
        expectations.append((waiting_on_killed > 0, f"no reader waited on {killed.name} when it was killed"))
        time.sleep(max(3.0, seconds / 10))
        self.stop_sending.set()
        for thread in senders:
            thread.join(timeout=GIVE_UP_S + 35)

        # The quiet readers of the pods not killed see their first wait run out, then the end.
        quiet_started = [waiter.first_started or time.monotonic() for waiter in self.waiters
                         if waiter.quiet and waiter.route not in ("balancer", killed.name)]
        time.sleep(max(0.0, max(quiet_started) + WAIT_S + 1.0 - time.monotonic()))
        closing_at = time.monotonic()
        self.deadline = closing_at + WAIT_S + ANSWER_BOUND_S + 10
        closers = [threading.Thread(target=self._send_closing, args=(self.waiters[index::SENDERS], index),
                                    daemon=True) for index in range(SENDERS)]
        for thread in closers:
            thread.start()
        for thread in closers + readers:
            thread.join(timeout=max(1.0, self.deadline + 5 - time.monotonic()))
        still = [thread for thread in closers + readers if thread.is_alive()]
        expectations.append((not still, f"{len(still)} waiting or closing threads still running past the deadline"))
        # Every slot given back: hello counts no waiter once its reader has its answer.
        left: dict[str, int] = {}
        for _ in range(50):
            left = {pod.name: n for pod in cluster.pods if (n := waiting_now(pod))}
            if not left:
                break
            time.sleep(0.1)
        expectations.append((not left, f"readers still counted waiting (hello_waiting_readers) once all had left: {left}"))

        self._check_answers(killed.name, kill_at, ready_at, notes, expectations)
        self._report_commands(commands_before, commands_after, steady_to - steady_from, notes)
        self._report_latency(closing_at, notes)
        return lambda ledger: self._check_duplicates(killed.name, kill_at, notes)

    def _check_answers(self, killed: str, kill_at: float, ready_at: float, notes: list[str], expectations: list):
        kinds = {"hellos": 0, "empty at its end": 0, f"error on {killed} during its kill": 0,
                 "empty early": 0, "error elsewhere": 0, "late or none": 0}
        examples: list[str] = []
        surviving = {pod.name for pod in self.cluster.pods} - {killed}
        for waiter in self.waiters:
            for started, ended, status, pod, hellos in waiter.answers:
                ok = status in (200, 201)
                if ended - started > WAIT_S + ANSWER_BOUND_S:
                    kind = "late or none"
                elif ok and hellos:
                    kind = "hellos"
                elif ok:
                    kind = "empty at its end" if ended - started >= WAIT_S - 0.1 else "empty early"
                elif (waiter.route == killed or (waiter.route == "balancer" and pod not in surviving)) \
                        and ended >= kill_at - 0.1 and started <= ready_at + 1.0:
                    # Through the balancer, nginx's own errors do not say which pod: the time does.
                    kind = f"error on {killed} during its kill"
                else:
                    kind = "error elsewhere"
                kinds[kind] += 1
                if kind in ("empty early", "error elsewhere", "late or none") and len(examples) < 3:
                    examples.append(f"{waiter.name} via {waiter.route}: {status} from {pod} after "
                                    f"{ended - started:.1f} s")
        woken = sum(waiter.woken for waiter in self.waiters)
        quiet_ran_out = [waiter for waiter in self.waiters if waiter.quiet and waiter.route not in ("balancer", killed)
                         and any(a[4] == [] and a[2] in (200, 201) and a[1] - a[0] >= WAIT_S - 0.1
                                 for a in waiter.answers)]
        quiet_due = sum(1 for waiter in self.waiters if waiter.quiet and waiter.route not in ("balancer", killed))
        bad = kinds["empty early"] + kinds["error elsewhere"] + kinds["late or none"]
        notes.append(f"every waiter answered: {sum(kinds.values())} waiting reads: "
                     + ", ".join(f"{count} {kind}" for kind, count in kinds.items())
                     + f"; {woken} of {len(self.waiters)} readers woken by their closing hello")
        expectations += [
            (bad == 0, f"{bad} waiting reads answered otherwise than allowed: {examples}"),
            (woken == len(self.waiters), f"{len(self.waiters) - woken} readers never got their closing hello"),
            (len(quiet_ran_out) == quiet_due, f"{quiet_due - len(quiet_ran_out)} quiet readers never saw "
                                              f"their wait run out (an empty answer after {WAIT_S} s)"),
            (kinds["hellos"] > 0, "no waiting read was answered with a hello"),
        ]

    def _report_commands(self, before: dict, after: dict, seconds: float, notes: list[str]) -> None:
        intervals = seconds * 1000 / WAKE_INTERVAL_MS
        per = {command: (after.get(command, 0) - before.get(command, 0)) / intervals for command in after}
        busiest = sorted(((n, c) for c, n in per.items() if n > 0), reverse=True)
        notes.append(f"store commands per {WAKE_INTERVAL_MS} ms interval: {sum(per.values()):.1f} "
                     f"({len(self.cluster.pods)} worlds, over {seconds:.1f} s of the steady part, the load's "
                     "and these sends and reads included: " + ", ".join(f"{c} {n:.1f}" for n, c in busiest) + ")")

    def _report_latency(self, closing_at: float, notes: list[str]) -> None:
        """From a send's 201 to its reader's answer, for hellos whose reader was waiting before
        the send began (the others were found by a read, not woken); the closing hellos, sent in
        a burst, are left out."""
        first: dict[str, Delivery] = {}
        for delivery in self.deliveries:
            first.setdefault(delivery.hello, delivery)
        cross: list[float] = []
        same: list[float] = []
        for sender, (began, pod) in self.acknowledged.items():
            delivery = first.get(sender)
            if delivery is None or delivery.started > began or began >= closing_at:
                continue
            acknowledged = self.ledger.acknowledged_at[sender]
            (same if pod == delivery.pod else cross).append(max(0.0, delivery.answered - acknowledged) * 1000)
        goal = WAKE_INTERVAL_MS + 100
        within = sum(1 for value in cross if value <= goal)
        notes.append(f"wake latency, 201 to the reader's answer (the harness's clocks): sent through another pod "
                     f"than the reader's: {percentiles(cross)} ({within} of {len(cross)} within interval + 100 ms "
                     f"= {goal} ms); through the reader's own pod: {percentiles(same)}")

    def _check_duplicates(self, killed: str, kill_at: float, notes: list[str]) -> tuple[bool, str]:
        """After the drain: each of these hellos was delivered again only after a delivery that
        may come back (reliable, its confirmation not 204; a GET of the killed pod's hello
        answered just before the kill), never after one that was final."""
        by_hello: dict[str, list[Delivery]] = {}
        for delivery in sorted(self.deliveries, key=lambda d: d.answered):
            by_hello.setdefault(delivery.hello, []).append(delivery)
        excused = {"after a reliable read whose confirmation did not land": 0,
                   f"after a GET answered by {killed} just before its kill": 0}
        wrong: list[str] = []
        mine = set(self.acknowledged)
        for hello in mine:
            seen = by_hello.get(hello, [])
            drained = self.ledger.deliveries[hello] - len(seen)
            for position, delivery in enumerate(seen):
                if position == len(seen) - 1 and drained == 0:
                    break  # the last delivery may be final
                if delivery.kind == "reliable" and delivery.confirmed != 204:
                    excused["after a reliable read whose confirmation did not land"] += 1
                elif delivery.kind == "get" and delivery.pod == killed \
                        and kill_at - GET_ACK_WINDOW_S <= delivery.answered <= kill_at + 0.5:
                    excused[f"after a GET answered by {killed} just before its kill"] += 1
                else:
                    wrong.append(f"{hello} delivered again after a {delivery.kind} answered by {delivery.pod} "
                                 f"{delivery.answered - kill_at:+.1f} s from the kill")
            if drained > 1:
                wrong.append(f"{hello} found {drained} times by the drain")
        duplicates = sum(max(0, self.ledger.deliveries[hello] - 1) for hello in mine)
        notes.append(f"{len(mine)} hellos to waiting readers acknowledged, "
                     f"{sum(1 for hello in mine if by_hello.get(hello))} received by their waiting reader; "
                     f"duplicates {duplicates}: " + ", ".join(f"{n} {why}" for why, n in excused.items())
                     + f", {len(wrong)} where the guarantees allow none")
        return not wrong, f"duplicates the guarantees do not allow: {wrong[:3]}"


def waiting_readers(cluster: Cluster, ledger: Ledger, seconds: float, notes: list[str], expectations: list):
    return WaitingReaders(cluster, ledger).run(seconds, notes, expectations)
