"""The load of the scale harness: senders with unique hellos and Idempotency-Keys, readers that
drain (reliable reads, confirmed; plain GETs where a scenario asks), and the ledger of what they
saw, so that every delivery is matched to the POST that made it. Used by run.py."""

from __future__ import annotations

import collections
import http.client
import json
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

LEASE_MS = 2000  # WORLD_LEASE_MS here: hellos taken by a crashed read come back after 2 s
SENDERS = 6
READERS = 3  # reliable readers, in every scenario
GET_READERS = 2  # plain GET readers, beside them, where a scenario asks for them
RECIPIENTS = 24
GIVE_UP_S = 30  # a sender retries one hello this long at most
PROBE_INBOXES = 4  # inboxes the lease probe watches, beside the load


@dataclass
class Ledger:
    """What clients saw, shared by every load thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: set[str] = field(default_factory=set)
    acknowledged: set[str] = field(default_factory=set)
    acknowledged_at: dict[str, float] = field(default_factory=dict)
    deliveries: collections.Counter = field(default_factory=collections.Counter)
    confirmed: set[str] = field(default_factory=set)
    # Hellos GET readers received (with repeats), against hello-service's count of GET hellos.
    get_received: int = 0
    failed: int = 0
    server_errors: int = 0
    missing_retry_after: int = 0
    balancer_503: int = 0
    requests: int = 0
    out_of_order: int = 0
    # Reliable reads (and confirmations) answered by a pod of a release that has no such endpoint
    # (0.1.0, during a rolling update): retried elsewhere, not failures.
    old_release_answers: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)
    # Inboxes of a scenario's own readers (waiting-readers) that the final drain empties too.
    more_inboxes: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Deliveries beyond the first of each hello."""
        return sum(count - 1 for count in self.deliveries.values())

    def answer(self, status: int | None, headers: http.client.HTTPMessage | None) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[status or "no answer"] += 1
            if status is not None and 200 <= status < 300:
                return
            self.failed += 1
            if status is not None and status >= 500:
                self.server_errors += 1
            if status in (429, 503) and headers is not None and not headers.get("Retry-After"):
                self.missing_retry_after += 1
            if status == 503 and headers is not None and headers.get("X-Served-By") == "balancer":
                self.balancer_503 += 1


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         host: str = "127.0.0.1", timeout: float = 30):
    """One request on a new connection: (status, headers, body) or (None, None, error text)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    except (OSError, http.client.HTTPException) as error:
        return None, None, str(error).encode()
    finally:
        connection.close()


def hello_path(name: str) -> str:
    """The API path of `name`'s inbox (percent-encoded: some names are not ASCII)."""
    return "/hello/" + urllib.parse.quote(name, safe="")


def sequence_of(sender_name: str) -> tuple[str, int]:
    stem, _, number = sender_name.rpartition("-")
    return stem, int(number)


class Load:
    """Bounded load: senders with unique hellos and Idempotency-Keys, readers that drain."""

    def __init__(self, port: int, tag: str, ledger: Ledger, get_readers: int = 0,
                 old_release_pods: bool = False):
        self.port = port
        # Some pods run a release without reliable reads (a rolling update from 0.1.0).
        self.old_release_pods = old_release_pods
        self.get_readers = get_readers
        self.tag = tag
        self.ledger = ledger
        # Some recipients are spelled with non-ASCII letters, sent percent-encoded.
        self.recipients = [f"{tag}.r{j}" if j % 4 else f"{tag}.zoë{j}" for j in range(RECIPIENTS)]
        self.stop_sending = threading.Event()
        self.stop_reading = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, max_per_sender: int) -> None:
        for index in range(SENDERS):
            self.threads.append(threading.Thread(target=self._send, args=(index, max_per_sender), daemon=True))
        for index in range(READERS):
            self.threads.append(threading.Thread(target=self._read, args=(index, self.read_once), daemon=True))
        for index in range(self.get_readers):
            self.threads.append(threading.Thread(target=self._read, args=(READERS + index, self.get_once),
                                                 daemon=True))
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_sending.set()
        self.stop_reading.set()
        for thread in self.threads:
            thread.join(timeout=GIVE_UP_S + 35)
            if thread.is_alive():
                raise RuntimeError(f"load thread {thread.name} did not stop")

    def _send(self, index: int, max_per_sender: int) -> None:
        rng = random.Random(index)
        for seq in range(1, max_per_sender + 1):
            if self.stop_sending.is_set():
                return
            sender = f"{self.tag}.s{index}-{seq}"
            to = rng.choice(self.recipients)
            body = json.dumps({"from": sender}).encode()
            headers = {"Content-Type": "application/json", "Idempotency-Key": f"{sender}-key"}
            with self.ledger.lock:
                self.ledger.sent.add(sender)
            give_up = time.monotonic() + GIVE_UP_S
            while True:
                status, answer_headers, _ = call(self.port, "POST", hello_path(to), body, headers)
                self.ledger.answer(status, answer_headers)
                if status == 201:
                    with self.ledger.lock:
                        self.ledger.acknowledged.add(sender)
                        self.ledger.acknowledged_at[sender] = time.monotonic()
                    break
                if status is not None and 400 <= status < 500 and status not in (409, 429):
                    with self.ledger.lock:
                        self.ledger.problems.append(f"POST {to} from {sender}: unexpected {status}")
                    break
                if time.monotonic() > give_up:
                    break
                retry_after = answer_headers.get("Retry-After") if answer_headers else None
                time.sleep(min(float(retry_after), 0.5) if retry_after else 0.1)

    def record(self, hellos: list[dict]) -> None:
        last_seq: dict[str, int] = {}
        with self.ledger.lock:
            for hello in hellos:
                self.ledger.deliveries[hello["from"]] += 1
                stem, seq = sequence_of(hello["from"])
                # Oldest first within one answer: a sender's hellos to one name come in order.
                if seq < last_seq.get(stem, 0):
                    self.ledger.out_of_order += 1
                last_seq[stem] = seq

    def read_once(self, to: str) -> tuple[int, int]:
        """One reliable read of `to`, confirmed: (hellos returned, remaining), or (-1, -1) when
        the read failed. A confirmation that fails is repeated; one that never succeeds leaves the
        hellos to come back after the lease (a duplicate, not a loss)."""
        status, headers, body = call(self.port, "POST", hello_path(to) + "/reads?limit=100")
        if self.answered_by_old_release(status, body):
            return -1, -1
        self.ledger.answer(status, headers)
        if status != 201:
            return -1, -1
        answer = json.loads(body)
        self.record(answer["hellos"])
        receipt = answer["receipt"]
        give_up = time.monotonic() + 10
        while receipt and time.monotonic() < give_up:
            status, headers, body = call(self.port, "DELETE", f"{hello_path(to)}/reads/{receipt}")
            if self.answered_by_old_release(status, body):
                continue  # the next attempt goes through the balancer again
            self.ledger.answer(status, headers)
            if status == 204:
                with self.ledger.lock:
                    self.ledger.confirmed.update(hello["from"] for hello in answer["hellos"])
                break
            if status in (404, 410):
                break
            time.sleep(0.1)
        return len(answer["hellos"]), answer["remaining"]

    def answered_by_old_release(self, status: int | None, body: bytes) -> bool:
        """A 404/405 for the route itself (not /problems/receipt-not-found), from a pod whose
        release has no reliable reads, while old_release_pods: counted, and the caller retries."""
        if not self.old_release_pods or status not in (404, 405):
            return False
        try:
            kind = json.loads(body).get("type")
        except ValueError:
            return False
        if kind not in ("/problems/not-found", "/problems/method-not-allowed"):
            return False
        with self.ledger.lock:
            self.ledger.old_release_answers += 1
        time.sleep(0.02)
        return True

    def get_once(self, to: str) -> tuple[int, int]:
        """One plain GET of `to`: (hellos returned, remaining), or (-1, -1) when it failed."""
        status, headers, body = call(self.port, "GET", hello_path(to) + "?limit=100")
        self.ledger.answer(status, headers)
        if status != 200:
            return -1, -1
        answer = json.loads(body)
        self.record(answer["hellos"])
        with self.ledger.lock:
            self.ledger.get_received += len(answer["hellos"])
        return len(answer["hellos"]), answer["remaining"]

    def _read(self, index: int, read) -> None:
        rng = random.Random(1000 + index)
        while not self.stop_reading.is_set():
            got, _ = read(rng.choice(self.recipients))
            if got <= 0:
                time.sleep(0.02)

    def drain(self, not_before: float, timeout: float = 60) -> None:
        """Reads every inbox (reliably) until the inboxes are empty, no earlier than `not_before`
        (when the leases of any crashed read have run out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = 0
            failed = False
            for to in self.recipients + self.ledger.more_inboxes:
                while True:
                    got, remaining = self.read_once(to)
                    if got < 0:
                        failed = True
                        break
                    found += got
                    if remaining == 0:
                        break
            # Every lease taken before the drain began has run out by `not_before`, and the
            # drain confirms its own reads: one empty pass after that means nothing is left.
            if found == 0 and not failed and time.monotonic() >= not_before:
                return
            time.sleep(0.2)


class LeaseProbe:
    """Housekeeping under load, seen from outside. In inboxes of its own (no other reader touches
    them) it sends a hello, leases it and never confirms; when the lease has been over for as long
    again (2x the lease after it was taken), it reads again: the hello must be back. One that is
    still hidden is an overdue lease (the store did not return it in time). The check is made at
    the first read that succeeds after that moment, a lease after any read that failed (a store
    that is down delays the check, it does not count against it; a read that got no answer may
    have leased the hello); after the check the hello is confirmed, so nothing is left."""

    def __init__(self, port: int, tag: str):
        self.port = port
        self.inboxes = [f"{tag}.lease-probe{j}" for j in range(PROBE_INBOXES)]
        self.stop_event = threading.Event()
        self.checked = 0
        self.overdue = 0
        self.overdue_examples: list[str] = []
        self.sequence = 0
        self.thread = threading.Thread(target=self._run, name=f"lease-probe-{tag}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stops after the cycle under way has been checked (a bounded wait)."""
        self.stop_event.set()
        self.thread.join(timeout=2 * LEASE_MS / 1000 + GIVE_UP_S + 30)
        if self.thread.is_alive():
            raise RuntimeError("the lease probe did not stop")

    def _send(self, inbox: str) -> str | None:
        self.sequence += 1
        sender = f"{inbox}.from-{self.sequence}"
        body = json.dumps({"from": sender}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"{sender}-key"}
        give_up = time.monotonic() + 10
        while time.monotonic() < give_up:
            status, _, _ = call(self.port, "POST", hello_path(inbox), body, headers)
            if status == 201:
                return sender
            time.sleep(0.2)
        return None

    def _read(self, inbox: str) -> dict | None:
        """One reliable read of the whole inbox, leased for LEASE_MS, or None when it failed."""
        status, _, body = call(self.port, "POST", f"{hello_path(inbox)}/reads?limit=100&lease_ms={LEASE_MS}")
        return json.loads(body) if status == 201 else None

    def _confirm(self, inbox: str, answer: dict) -> None:
        if answer.get("receipt"):
            for _ in range(20):
                status, _, _ = call(self.port, "DELETE", f"{hello_path(inbox)}/reads/{answer['receipt']}")
                if status in (204, 404, 410):
                    return
                time.sleep(0.2)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            # Take: one hello per inbox, leased and left unconfirmed.
            taken: dict[str, tuple[str, float]] = {}
            for inbox in self.inboxes:
                sender = self._send(inbox)
                if sender is None:
                    continue
                answer = self._read(inbox)
                if answer is not None and any(h["from"] == sender for h in answer["hellos"]):
                    taken[inbox] = (sender, time.monotonic())
            if not taken:
                self.stop_event.wait(0.5)
                continue
            # Look again once every lease has been over for as long as it lasted.
            due = max(at for _, at in taken.values()) + 2 * LEASE_MS / 1000
            time.sleep(max(0.0, due - time.monotonic()))
            for inbox, (sender, _) in taken.items():
                give_up = time.monotonic() + GIVE_UP_S
                while time.monotonic() < give_up:
                    answer = self._read(inbox)
                    if answer is None:
                        # A read without an answer (a 504, a pod killed) may still have leased the
                        # hello: look again once that lease, too, has run out.
                        time.sleep(LEASE_MS / 1000 + 0.2)
                        continue
                    self.checked += 1
                    if not any(h["from"] == sender for h in answer["hellos"]):
                        self.overdue += 1
                        self.overdue_examples.append(f"{sender} still hidden 2x its lease after it was taken")
                    self._confirm(inbox, answer)
                    break

    def drain(self) -> None:
        """Confirms whatever is left in the probe's inboxes (an overdue hello, once it is back)."""
        deadline = time.monotonic() + 2 * LEASE_MS / 1000 + 5
        while time.monotonic() < deadline:
            left = 0
            for inbox in self.inboxes:
                answer = self._read(inbox)
                if answer is None:
                    left += 1
                    continue
                left += len(answer["hellos"]) + answer["remaining"]
                self._confirm(inbox, answer)
            if left == 0:
                return
            time.sleep(0.5)
