"""The scale harness's scenarios: what each does to the cluster while the load runs (run.py runs
them). An action disturbs the cluster and returns when the disturbance is over, with a check of
the ledger that the scenario's own expectation holds (or None)."""

from __future__ import annotations

import collections
import json
import random
import socket
import threading
import time
import urllib.parse

from tests.scale.load import RECIPIENTS, Ledger, call
from tests.scale.previous import PREVIOUS_VERSION
from tests.scale.waiting import waiting_readers
from tests.support.cluster import Cluster
from tests.support.pod import Release
from tests.support.processes import wait_until


def steady(cluster, ledger, seconds, notes, expectations):
    def check(ledger: Ledger):
        clean = ledger.failed == 0 and ledger.duplicates == 0 and ledger.out_of_order == 0
        return clean, f"steady load had {ledger.failed} failed requests or duplicates or disorder"
    return check


def kill_container(which: str, pod_index: int):
    def action(cluster: Cluster, ledger, seconds, notes, expectations):
        time.sleep(seconds / 3)
        pod = cluster.pods[pod_index % len(cluster.pods)]
        container = {"world": pod.world, "hello": pod.hello, "nginx": pod.nginx}[which]
        container.kill()
        notes.append(f"kill -9 {pod.name} {which}; restarted after 1 s")
        cluster.restart_container(container, delay=1.0)
        wait_until(lambda: pod in cluster.ready_pods(), 60, f"{pod.name} to be ready again")
        return None
    return action


def kill_store(cluster: Cluster, ledger, seconds, notes, expectations):
    time.sleep(seconds / 3)
    cluster.kill_store()
    down_at = time.monotonic()
    time.sleep(2)
    cluster.start_store()
    notes.append("kill -9 the store; restarted after 2 s on the same file")
    return recovered_after(down_at)


def store_down(cluster: Cluster, ledger, seconds, notes, expectations):
    time.sleep(seconds / 4)
    cluster.stop_store()
    down_at = time.monotonic()
    time.sleep(max(4.0, seconds / 3))
    cluster.start_store()
    notes.append(f"store stopped for {time.monotonic() - down_at:.0f} s, then started again")

    def check(ledger: Ledger):
        # 503 for what never reached the store; 504 (outcome unknown) only for writes in flight
        # when it stopped, whose answers were lost. Never a 500.
        five_hundreds = {s: n for s, n in ledger.statuses.items() if isinstance(s, int) and s >= 500}
        honest = set(five_hundreds) <= {503, 504} and five_hundreds.get(503, 0) > 0
        recovered, message = recovered_after(down_at)(ledger)
        return (honest and recovered,
                f"5xx were {five_hundreds} (want 503s, and 504 at most for writes in flight); {message}")
    return check


def recovered_after(moment: float):
    def check(ledger: Ledger):
        later = sum(1 for at in ledger.acknowledged_at.values() if at > moment + 0.5)
        return later > 0, f"{later} hellos acknowledged after the store came back"
    return check


def reader_vanishes(cluster: Cluster, ledger, seconds, notes, expectations):
    """Readers that die at the worst moment, beside the normal ones: reliable readers that take a
    lease and never confirm, and GET readers (straight to a pod's hello-service, as a client of
    the pod would be) that reset the connection without reading their answer. Their hellos must
    come back after the lease and reach the other readers: 0 lost."""
    stop = threading.Event()
    taken = collections.Counter()
    rng = random.Random(7)
    recipients = [f"reader-vanishes.r{j}" if j % 4 else f"reader-vanishes.zoë{j}" for j in range(RECIPIENTS)]

    def vanish():
        while not stop.is_set():
            to = urllib.parse.quote(rng.choice(recipients), safe="")
            status, _, body = call(cluster.lb_port, "POST", f"/hello/{to}/reads?limit=5")
            if status == 201:
                taken["leased, never confirmed"] += len(json.loads(body)["hellos"])
            pod = rng.choice(cluster.pods)
            try:
                with socket.create_connection((pod.address, pod.hello_port), timeout=5) as raw:
                    raw.sendall(f"GET /hello/{to}?limit=5 HTTP/1.1\r\nHost: pod\r\n\r\n".encode())
                    raw.settimeout(5)
                    if raw.recv(1, socket.MSG_PEEK):
                        taken["reset before reading"] += 1  # answers, not hellos: unread
                    # Closing with the answer unread resets the connection.
            except OSError:
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=vanish, daemon=True)
    thread.start()
    time.sleep(seconds * 0.8)
    stop.set()
    thread.join(timeout=30)
    notes.append(f"{taken['leased, never confirmed']} hellos leased by readers that never confirmed; "
                 f"{taken['reset before reading']} GET answers reset unread")

    def check(ledger: Ledger):
        return (taken["leased, never confirmed"] > 0 and taken["reset before reading"] > 0,
                f"the vanishing readers took nothing ({dict(taken)}): the scenario tested nothing")
    return check


def rolling_restart(cluster: Cluster, ledger, seconds, notes, expectations):
    time.sleep(1)
    for pod in cluster.pods:
        cluster.terminate_pod(pod)
        cluster.start_pod(pod)
        wait_until(lambda: pod in cluster.ready_pods(), 60, f"{pod.name} back in the balancer")
    notes.append(f"every pod: out of the Service, preStop, SIGTERM, exit, start ({len(cluster.pods)} pods)")

    def check(ledger: Ledger):
        return (ledger.failed == 0 and ledger.duplicates == 0,
                f"rolling restart had {ledger.failed} failed requests ({dict(ledger.statuses)}), "
                f"{ledger.duplicates} duplicates")
    return check


def rolling_update(cluster: Cluster, ledger, seconds, notes, expectations):
    """The pods run the previous release (set up before the load); one by one, each is replaced by
    a pod of this checkout while the load runs: both releases serve, on one MongoDB."""
    time.sleep(1)
    for pod in list(cluster.pods):
        new = cluster.replace_pod(pod, cluster.release)
        wait_until(lambda: new in cluster.ready_pods(), 60, f"{new.name} ({new.release.name}) in the balancer")
    notes.append(f"every pod: {PREVIOUS_VERSION} out of the Service, preStop, SIGTERM, exit; "
                 f"{cluster.release.name} started in its place ({len(cluster.pods)} pods)")

    def check(ledger: Ledger):
        return (ledger.failed == 0 and ledger.duplicates == 0,
                f"rolling update had {ledger.failed} failed requests ({dict(ledger.statuses)}), "
                f"{ledger.duplicates} duplicates")
    return check


def switch_to(cluster: Cluster, release: Release) -> None:
    """A scenario's setup, without load: every pod replaced by one of `release`."""
    for pod in list(cluster.pods):
        if pod.release != release:
            new = cluster.replace_pod(pod, release)
            wait_until(lambda: new in cluster.ready_pods(), 60, f"{new.name} ({release.name}) in the balancer")
    cluster.wait_all_ready(timeout=60)


SCENARIOS = {
    "steady": steady,
    "kill-world": kill_container("world", 1),
    "kill-hello": kill_container("hello", 2),
    "kill-nginx": kill_container("nginx", 0),  # with plain GET readers too (GET_READERS_IN)
    "kill-store": kill_store,
    "reader-vanishes": reader_vanishes,
    "waiting-readers": waiting_readers,  # tests/scale/waiting.py
    "rolling-restart": rolling_restart,
    "rolling-update": rolling_update,  # from the previous release (PREVIOUS_VERSION)
    "store-down": store_down,
}


# Scenarios whose load also runs plain GET readers.
GET_READERS_IN = {"kill-nginx", "rolling-update"}
