"""Checks of a running rendered pod (pod_spec.PodRunner): every probe and hook passes, each
process runs as the user the spec says, world answers hello alone (no TCP port, a socket only its
user opens), and the pod stops gracefully within its grace period."""

import os
import re
import time
from pathlib import Path

from tests.containers.pod_spec import PodRunner
from tests.containers.podman import fail, podman


def container_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return declared["containerPort"]
    fail(f"{container['name']}: no port named {port}")


def check_probes_and_hooks(runner: PodRunner, prober: str) -> int:
    checked = 0
    for container in runner.spec["containers"]:
        name = f"{runner.pod}-{container['name']}"
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(kind)
            if not probe:
                continue
            timeout = probe.get("timeoutSeconds", 1)
            if "httpGet" in probe:
                port = container_port(container, probe["httpGet"]["port"])
                url = f"http://127.0.0.1:{port}{probe['httpGet'].get('path', '/')}"
                # Several attempts, as the kubelet makes (failureThreshold); a probe that never
                # passes fails the test.
                command = ["exec", prober, "curl", "-fsS", "-o", "/dev/null", "--max-time", str(timeout), url]
                what = f"GET {url}"
            elif "exec" in probe:
                command = ["exec", name, *probe["exec"]["command"]]
                what = "exec " + " ".join(probe["exec"]["command"])
            else:
                fail(f"{container['name']} {kind}: only httpGet and exec probes are handled")
            for _ in range(max(probe.get("failureThreshold", 3), 3) * 5):
                result = podman(*command, check=False, timeout=timeout + 10)
                if result.returncode == 0:
                    break
                time.sleep(0.5)
            else:
                logs = podman("logs", "--tail", "20", name, check=False)
                fail(f"{container['name']} {kind} ({what}) never passed: {result.stderr.strip()[-300:]}\n"
                     f"--- {container['name']}'s log:\n{logs.stdout}{logs.stderr}")
            print(f"    {container['name']:6} {kind:15} {what}: passes", flush=True)
            checked += 1
        hook = container.get("lifecycle", {}).get("preStop", {})
        if "exec" in hook:
            result = podman("exec", name, *hook["exec"]["command"], check=False, timeout=60)
            if result.returncode != 0:
                fail(f"{container['name']}'s preStop hook {hook['exec']['command']} fails: {result.stderr.strip()}")
            print(f"    {container['name']:6} preStop         exec {' '.join(hook['exec']['command'])}: runs", flush=True)
            checked += 1
    return checked


def check_users(runner: PodRunner) -> None:
    for container in runner.spec["containers"]:
        name = f"{runner.pod}-{container['name']}"
        expected = container.get("securityContext", {}).get("runAsUser")
        # Every process of the container, by its effective uid as the kernel sees it (no user
        # namespace here: the host's uid is the container's).
        pids = podman("top", name, "hpid").stdout.split()[1:]
        if not pids:
            fail(f"{container['name']}: no process")
        users = set()
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            users.add(re.search(r"^Uid:\s+\d+\s+(\d+)", status, re.M).group(1))
        if "0" in users:
            fail(f"{container['name']} runs a process as root: {users}")
        if expected is not None and users != {str(expected)}:
            fail(f"{container['name']} runs as {users}, the spec says {expected}")
        print(f"    {container['name']:6} runs as uid {', '.join(sorted(users))}", flush=True)


def check_only_hello_reaches_world(runner: PodRunner) -> None:
    """world listens on no TCP port of the pod, and its socket opens for hello's user only."""
    world = next(c for c in runner.spec["containers"] if c["name"] == "world")
    nginx = next(c for c in runner.spec["containers"] if c["name"] == "nginx")
    name = f"{runner.pod}-world"
    pid = podman("top", name, "hpid").stdout.split()[1]
    # The inodes of world's sockets, and the pod's TCP listeners (its network namespace's
    # tables, read through world's process), by inode.
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    listening = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                listening.append((int(fields[1].rsplit(":", 1)[1], 16), fields[9]))
    worlds = [port for port, inode in listening if inode in inodes]
    if worlds:
        fail(f"world listens on TCP port(s) {worlds} of the pod: it must answer hello alone, on its socket")
    unix = [line.split()[-1] for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]
            if line.split()[6] in inodes and len(line.split()) > 7]
    print(f"    world  listens on no TCP port (the pod's: {sorted({port for port, _ in listening})}); "
          f"on {', '.join(sorted(set(unix))) or 'no path'}", flush=True)
    # Its own probe, over the socket: as world's user it answers; as nginx's user the socket
    # does not open (mode 0600). nginx's container does not even mount the volume.
    own = world.get("securityContext", {}).get("runAsUser", 10001)
    other = nginx.get("securityContext", {}).get("runAsUser")
    if other is None or other == own:
        fail(f"nginx runs as {other}, world as {own}: they must be different users")
    probe = ["exec", "--user", f"{other}:{other}", name, "/usr/local/bin/world-service", "healthcheck", "/healthz"]
    if podman(*probe, check=False).returncode == 0:
        fail(f"a process under nginx's uid {other} called world over its socket")
    if podman("exec", name, "/usr/local/bin/world-service", "healthcheck", "/healthz", check=False).returncode != 0:
        fail("world's own user cannot call world over its socket")
    mounted = [m["mountPath"] for m in nginx.get("volumeMounts", []) if m["name"] == "world-socket"]
    if mounted:
        fail(f"nginx mounts world's socket volume at {mounted}")
    print(f"    world  socket: its user ({own}) calls it, nginx's ({other}) cannot; nginx does not mount it",
          flush=True)


def stop_gracefully(runner: PodRunner) -> None:
    grace = runner.spec.get("terminationGracePeriodSeconds", 30)
    started = time.monotonic()
    podman("pod", "stop", "-t", str(grace), runner.pod, timeout=grace + 60)
    took = time.monotonic() - started
    for container in runner.spec["containers"]:
        code = podman("inspect", "--format", "{{.State.ExitCode}}", f"{runner.pod}-{container['name']}").stdout.strip()
        if code != "0":
            logs = podman("logs", "--tail", "15", f"{runner.pod}-{container['name']}", check=False)
            fail(f"{container['name']} exited {code} on SIGTERM (137: killed after the {grace} s grace period):\n"
                 f"{logs.stdout}{logs.stderr}")
    print(f"    every container exited 0 on SIGTERM, within the {grace} s grace period ({took:.0f} s)", flush=True)
