"""Runs the rendered manifests' pods with podman, exactly as written, and checks them.

  rendered_pod.py OVERLAY... --tag TAG

For each overlay:
1. Renders deploy/overlays/OVERLAY with plain `kubectl kustomize`.
2. Runs the hello-secrets Job's container (image, command, args, env, security context, mounts)
   against a stand-in Kubernetes API on loopback (tests/support/kube_api.py), which then holds the
   Secrets it made.
3. Takes the app Deployment's pod spec and runs it as one podman pod: every container with its
   image, command and args, env and envFrom (ConfigMaps and Secrets from step 2, `$(VAR)`
   expansion as Kubernetes does it), ConfigMap, Secret and emptyDir volumes with their items and
   modes, security context (user, group, read-only root, dropped capabilities, no privilege
   escalation), memory and CPU limits, and one shared localhost.
4. Checks every probe of every container (httpGet from inside the pod, exec in the container),
   every exec hook, runs scripts/smoke.sh (in the hello-tools image) through the published
   port, then stops the pod with the spec's grace period and checks each container exits 0.

Only these substitutions are made, each printed when it is made:
- image references: the images built from the repo's Dockerfiles, tagged localhost/NAME:TAG;
- downward-API values (pod name, namespace, pod IP, node name);
- the store URI: a MongoDB-protocol server (nx-27017) in the pod, which has no authentication;
  the rendered URI is checked first (it must carry mongodb-app's credentials);
- host aliases: mongodb-0.mongodb (and the API server) resolve to the pod's loopback;
- the Kubernetes API the Job talks to, and the ServiceAccount token it mounts.
MongoDB's own StatefulSet is not run: no MongoDB server can run on these machines.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import kube_api  # noqa: E402
from ports import free_port  # noqa: E402

STORE_IMAGE = "localhost/hello-test/nx:standin"
STORE_URI = "mongodb://mongodb-0.mongodb:27017/hello?directConnection=true"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def substitution(message: str) -> None:
    print(f"    substituted: {message}", flush=True)


def fail(message: str) -> None:
    print(f"FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def podman(*args: str, check: bool = True, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        fail(f"podman {' '.join(args[:3])}... failed: {result.stderr.strip()[-600:]}")
    return result


class Rendered:
    """The overlay's objects, by kind and name."""

    def __init__(self, overlay: str):
        result = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy" / "overlays" / overlay)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            fail(f"kubectl kustomize deploy/overlays/{overlay}: {result.stderr}")
        self.objects = [d for d in yaml.safe_load_all(result.stdout) if d]

    def get(self, kind: str, name: str) -> dict:
        for document in self.objects:
            if document["kind"] == kind and document["metadata"]["name"] == name:
                return document
        fail(f"the rendered manifests have no {kind} {name}")


class Images:
    """Image references in the manifests -> the images built from the repo (the one substitution
    of images)."""

    def __init__(self, tag: str):
        self.tag = tag

    def local(self, reference: str) -> str:
        name = reference.split("/")[-1].split(":")[0].split("@")[0]
        if name not in ("hello-nginx", "hello-service", "world-service", "hello-tools"):
            fail(f"{reference} is not built from this repo: the test cannot run it")
        local = f"localhost/{name}:{self.tag}"
        substitution(f"image {reference} -> {local} (built from the repo's Dockerfile)")
        return local


def expand(value: str, environment: dict) -> str:
    """Kubernetes' $(VAR) expansion: a defined variable is replaced, $$ escapes, others stay."""
    def replace(match):
        if match.group(0).startswith("$$"):
            return match.group(0)[1:]
        return environment.get(match.group(1), match.group(0))
    return re.sub(r"\$\$\([A-Za-z_][A-Za-z0-9_]*\)|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, value)


class PodRunner:
    def __init__(self, rendered: Rendered, images: Images, secrets_made: dict, work: Path, pod: str):
        self.rendered, self.images, self.secrets, self.work, self.pod = rendered, images, secrets_made, work, pod
        self.namespace = None

    # ---- what a container gets --------------------------------------------------------------

    def config_map(self, name: str) -> dict:
        return self.rendered.get("ConfigMap", name).get("data", {})

    def secret(self, name: str) -> dict:
        if name not in self.secrets:
            fail(f"Secret {name} does not exist: the pod would stay in CreateContainerConfigError")
        return self.secrets[name]

    def downward(self, field: str) -> str:
        value = {"metadata.name": self.pod, "metadata.namespace": self.namespace,
                 "status.podIP": "127.0.0.1", "spec.nodeName": "podman-node"}.get(field)
        if value is None:
            fail(f"downward-API field {field} is not known to this test")
        substitution(f"downward API {field} -> {value}")
        return value

    def environment(self, container: dict) -> dict:
        environment = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                environment.update(self.config_map(source["configMapRef"]["name"]))
            elif "secretRef" in source:
                environment.update(self.secret(source["secretRef"]["name"]))
        for variable in container.get("env", []):
            if "value" in variable:
                environment[variable["name"]] = expand(variable["value"], environment)
                continue
            reference = variable["valueFrom"]
            if "fieldRef" in reference:
                environment[variable["name"]] = self.downward(reference["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in reference:
                key = reference["secretKeyRef"]
                value = self.secret(key["name"]).get(key["key"])
                if value is None:
                    fail(f"Secret {key['name']} has no key {key['key']}")
                environment[variable["name"]] = value
            elif "configMapKeyRef" in reference:
                key = reference["configMapKeyRef"]
                environment[variable["name"]] = self.config_map(key["name"])[key["key"]]
            else:
                fail(f"env {variable['name']}: valueFrom {list(reference)} is not known to this test")
        return environment

    def volume_files(self, volume: dict) -> Path:
        """The directory of a ConfigMap or Secret volume's files, written once per pod (several
        containers mount the same volume, as the kubelet shares one)."""
        directory = self.work / "volumes" / volume["name"]
        if directory.exists():
            return directory
        directory.mkdir(parents=True)
        if "configMap" in volume:
            source, data = volume["configMap"], self.config_map(volume["configMap"]["name"])
        else:
            source, data = volume["secret"], self.secret(volume["secret"]["secretName"])
        mode = source.get("defaultMode", 0o644)
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        for item in items:
            path = directory / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[item["key"]])
            os.chmod(path, item.get("mode", mode))
        return directory

    def mounts(self, container: dict, volumes: dict) -> list[str]:
        arguments = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            target = mount["mountPath"]
            if "emptyDir" in volume and "subPath" in mount:
                fail("subPath mounts of an emptyDir are not handled by this test")
            if "emptyDir" in volume:
                # A directory of mode 0777 shared by the pod's containers, as the kubelet makes an
                # emptyDir (podman's --tmpfs would take the image's owner and mode instead).
                directory = self.work / "volumes" / volume["name"]
                directory.mkdir(parents=True, exist_ok=True)
                os.chmod(directory, 0o777)
                arguments += ["-v", f"{directory}:{target}:rw"]
            elif "configMap" in volume or "secret" in volume:
                directory = self.volume_files(volume)
                # subPath: one file (or folder) of the volume, mounted over what the image has there.
                source = directory / mount["subPath"] if "subPath" in mount else directory
                if not source.exists():
                    fail(f"{container['name']}: subPath {mount['subPath']} is not in volume {mount['name']}")
                arguments += ["-v", f"{source}:{target}:{'ro' if mount.get('readOnly') else 'rw'}"]
            else:
                fail(f"volume {mount['name']}: only configMap, secret and emptyDir are handled")
        return arguments

    def security(self, container: dict) -> list[str]:
        pod_context, context = self.spec.get("securityContext", {}), container.get("securityContext", {})
        arguments = []
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        group = context.get("runAsGroup", pod_context.get("runAsGroup"))
        if user is not None:
            arguments += ["--user", f"{user}:{group}" if group is not None else str(user)]
        if context.get("readOnlyRootFilesystem"):
            arguments.append("--read-only")
        for capability in context.get("capabilities", {}).get("drop", []):
            arguments += ["--cap-drop", capability]
        if context.get("allowPrivilegeEscalation") is False:
            arguments += ["--security-opt", "no-new-privileges"]
        if pod_context.get("fsGroup") is not None:
            arguments += ["--group-add", str(pod_context["fsGroup"])]
        return arguments

    @staticmethod
    def limits(container: dict) -> list[str]:
        limits = container.get("resources", {}).get("limits", {})
        arguments = []
        if "memory" in limits:
            arguments += ["--memory", limits["memory"].replace("Mi", "m").replace("Gi", "g")]
        if "cpu" in limits:
            cpu = limits["cpu"]
            arguments += ["--cpus", str(int(cpu[:-1]) / 1000 if str(cpu).endswith("m") else cpu)]
        return arguments

    def run_container(self, container: dict, volumes: dict, environment_file: Path) -> None:
        image = self.images.local(container["image"])
        arguments = ["run", "-d", "--pod", self.pod, "--name", f"{self.pod}-{container['name']}",
                     "--env-file", str(environment_file), *self.security(container), *self.limits(container),
                     *self.mounts(container, volumes)]
        if "command" in container:
            arguments += ["--entrypoint", json.dumps(container["command"])]
        arguments.append(image)
        arguments += container.get("args", [])
        podman(*arguments)

    # ---- the pod ----------------------------------------------------------------------------

    def start(self, deployment: dict, port: int) -> None:
        self.namespace = deployment["metadata"]["namespace"]
        self.spec = deployment["spec"]["template"]["spec"]
        if self.spec.get("initContainers"):
            fail("the app pod has init containers: run them first (not handled yet)")
        substitution("host alias mongodb-0.mongodb -> the pod's loopback (the store runs in the pod)")
        podman("pod", "create", "--name", self.pod, "-p", f"127.0.0.1:{port}:8080",
               "--add-host", "mongodb-0.mongodb:127.0.0.1")
        podman("run", "-d", "--pod", self.pod, "--name", f"{self.pod}-store", "--read-only", "--tmpfs", "/tmp",
               STORE_IMAGE)
        for _ in range(100):
            probe = podman("exec", f"{self.pod}-store", "python3", "-c",
                           "import socket; socket.create_connection(('127.0.0.1', 27017), 1)", check=False)
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        volumes = {volume["name"]: volume for volume in self.spec.get("volumes", [])}
        for container in self.spec["containers"]:
            environment = self.environment(container)
            if "WORLD_MONGODB_URI" in environment:
                self.check_store_uri(environment["WORLD_MONGODB_URI"])
                environment["WORLD_MONGODB_URI"] = STORE_URI
                substitution(f"WORLD_MONGODB_URI -> {STORE_URI} (nx-27017 in the pod: no authentication)")
            environment_file = self.work / f"{container['name']}.env"
            environment_file.write_text("".join(f"{key}={value}\n" for key, value in environment.items()))
            os.chmod(environment_file, 0o600)
            self.run_container(container, volumes, environment_file)
            print(f"    started {container['name']}", flush=True)

    def check_store_uri(self, uri: str) -> None:
        """What world-service would have used: mongodb-app's user, on its own database."""
        app = self.secret("mongodb-app")
        expected = f"mongodb://{app['username']}:{app['password']}@mongodb-0.mongodb:27017/hello?authSource=hello"
        if uri != expected:
            fail("the rendered WORLD_MONGODB_URI is not mongodb-app's user on database hello "
                 "(the value is not printed: it holds a password)")
        print("    WORLD_MONGODB_URI as rendered: mongodb-app's user (world-service), database hello, authSource hello")

    def container_port(self, container: dict, port) -> int:
        if isinstance(port, int):
            return port
        for declared in container.get("ports", []):
            if declared.get("name") == port:
                return declared["containerPort"]
        fail(f"{container['name']}: no port named {port}")

    def check_probes_and_hooks(self, prober: str) -> int:
        checked = 0
        for container in self.spec["containers"]:
            name = f"{self.pod}-{container['name']}"
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = container.get(kind)
                if not probe:
                    continue
                timeout = probe.get("timeoutSeconds", 1)
                if "httpGet" in probe:
                    port = self.container_port(container, probe["httpGet"]["port"])
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

    def check_users(self) -> None:
        for container in self.spec["containers"]:
            name = f"{self.pod}-{container['name']}"
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

    def check_world_answers_hello_alone(self) -> None:
        """world listens on no TCP port of the pod, and its socket opens for hello's user only."""
        world = next(c for c in self.spec["containers"] if c["name"] == "world")
        nginx = next(c for c in self.spec["containers"] if c["name"] == "nginx")
        name = f"{self.pod}-world"
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

    def stop_gracefully(self) -> None:
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        started = time.monotonic()
        podman("pod", "stop", "-t", str(grace), self.pod, timeout=grace + 60)
        took = time.monotonic() - started
        for container in self.spec["containers"]:
            code = podman("inspect", "--format", "{{.State.ExitCode}}", f"{self.pod}-{container['name']}").stdout.strip()
            if code != "0":
                logs = podman("logs", "--tail", "15", f"{self.pod}-{container['name']}", check=False)
                fail(f"{container['name']} exited {code} on SIGTERM (137: killed after the {grace} s grace period):\n"
                     f"{logs.stdout}{logs.stderr}")
        print(f"    every container exited 0 on SIGTERM, within the {grace} s grace period ({took:.0f} s)", flush=True)


def run_secrets_job(rendered: Rendered, images: Images, work: Path) -> dict:
    """The hello-secrets Job's container, as rendered, against the stand-in API. Returns the
    Secrets it made, decoded."""
    job = rendered.get("Job", "hello-secrets")
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    account = work / "serviceaccount"
    key = kube_api.make_serviceaccount(account, job["metadata"]["namespace"])
    os.chmod(account, 0o755)
    for file in account.iterdir():
        os.chmod(file, 0o644)
    api = kube_api.start(account, key)
    try:
        substitution(f"Kubernetes API -> a stand-in on 127.0.0.1:{api.server_port} (TLS, its own CA)")
        substitution("ServiceAccount token -> the stand-in's, mounted where Kubernetes mounts it")
        arguments = ["run", "--rm", "--network", "host", "--name", f"hello-secrets-job-{os.getpid()}",
                     "-e", "KUBERNETES_SERVICE_HOST=127.0.0.1", "-e", f"KUBERNETES_SERVICE_PORT={api.server_port}",
                     "-v", f"{account}:/var/run/secrets/kubernetes.io/serviceaccount:ro"]
        for variable in container.get("env", []):
            arguments += ["-e", f"{variable['name']}={variable['value']}"]
        context = container.get("securityContext", {})
        arguments += ["--user", f"{context['runAsUser']}:{context['runAsGroup']}"]
        if context.get("readOnlyRootFilesystem"):
            arguments.append("--read-only")
        arguments += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        for mount in container.get("volumeMounts", []):
            arguments += ["--tmpfs", f"{mount['mountPath']}:rw,size=4m,mode=1777"]
        arguments += ["--entrypoint", json.dumps(container["command"]), images.local(container["image"]),
                      *container["args"]]
        result = podman(*arguments, check=False, timeout=180)
        print("\n".join(f"    job: {line}" for line in (result.stdout + result.stderr).strip().splitlines()))
        if result.returncode != 0:
            fail("the hello-secrets Job failed")
        made = {name: kube_api.secret_values(secret) for name, secret in api.secrets.items()}
        if sorted(made) != sorted(container["args"]):
            fail(f"the Job made {sorted(made)}, its arguments ask for {container['args']}")
        return made
    finally:
        kube_api.stop(api)


def check_info(rendered: Rendered, port: int, prober: str) -> None:
    """/info through nginx: the mounted Secret's keys; with the `public` component, nothing (404),
    while hello-service's own port still answers it inside the pod."""
    public = any(d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("nginx-hidden-paths")
                 for d in rendered.objects)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=5) as answer:
            status, info = answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        status, info = error.code, {"content-type": error.headers.get("Content-Type")}
    if public:
        if status != 404 or not str(info.get("content-type")).startswith("application/problem+json"):
            fail(f"the public component should hide /info behind nginx's 404 problem: {status} {info}")
        inside = podman("exec", prober, "curl", "-fsS", "--max-time", "5", "http://127.0.0.1:8081/info", check=False)
        if inside.returncode != 0 or '"secrets"' not in inside.stdout:
            fail(f"hello-service's own port should still answer /info: {inside.stderr}")
        print("    /info: 404 problem through nginx (public component); hello-service's own port answers it")
        return
    keys = sorted(entry["key"] for entry in info.get("secrets", []))
    print(f"    /info lists the mounted Secret's keys: {keys}")
    if status != 200 or "api-token" not in keys:
        fail(f"/info does not list app-secret's key api-token (files of mode 0440, read by a non-root user): {keys}")


def run_overlay(overlay: str, tag: str) -> None:
    say(f"Rendering deploy/overlays/{overlay} (kubectl kustomize, default load rules)")
    rendered = Rendered(overlay)
    images = Images(tag)
    work = Path(tempfile.mkdtemp(prefix="rendered-pod-"))
    os.chmod(work, 0o755)
    pod = f"hello-rendered-{overlay}-{os.getpid()}"
    started = False
    try:
        say(f"{overlay}: the hello-secrets Job, as rendered, makes the Secrets")
        made = run_secrets_job(rendered, images, work)

        say(f"{overlay}: the app Deployment's pod spec, as rendered, as one podman pod")
        deployment = rendered.get("Deployment", "hello")
        runner = PodRunner(rendered, images, made, work, pod)
        port = free_port()
        started = True
        runner.start(deployment, port)
        prober = f"{pod}-prober"
        podman("run", "-d", "--pod", pod, "--name", prober, "--read-only", "--user", "10001:10001",
               "--entrypoint", '["sleep", "infinity"]', f"localhost/hello-tools:{tag}")

        say(f"{overlay}: every probe and hook of every container")
        checked = runner.check_probes_and_hooks(prober)
        runner.check_users()
        runner.check_world_answers_hello_alone()

        say(f"{overlay}: scripts/smoke.sh (the hello-tools image) through the published port 127.0.0.1:{port}")
        smoke = subprocess.run(["podman", "run", "--rm", "--network", "host", "--entrypoint",
                                '["/usr/local/bin/smoke.sh"]', f"localhost/hello-tools:{tag}",
                                f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=300)
        last = (smoke.stdout + smoke.stderr).strip().splitlines()[-1:] or [""]
        print(f"    {last[0]}")
        if smoke.returncode != 0 or not last[0].startswith("smoke: OK"):
            print(smoke.stdout + smoke.stderr)
            fail("the smoke test found the rendered pod broken")
        check_info(rendered, port, prober)

        say(f"{overlay}: stopping the pod with the spec's grace period")
        podman("rm", "--force", "--time", "0", prober)  # the test's helper, not part of the pod spec
        runner.stop_gracefully()
        say(f"{overlay}: rendered pod passed: the Job made {len(made)} Secrets, {len(runner.spec['containers'])} "
            f"containers ran as rendered, {checked} probes and hooks passed, smoke OK, graceful stop")
    finally:
        if started:
            podman("pod", "rm", "--force", "--time", "5", pod, check=False, timeout=120)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlays", nargs="+")
    parser.add_argument("--tag", default="local")
    options = parser.parse_args()
    for overlay in options.overlays:
        run_overlay(overlay, options.tag)


if __name__ == "__main__":
    main()
