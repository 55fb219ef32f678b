"""Runs the rendered manifests' pods with podman, exactly as written, and checks them.

  python3 -m tests.containers.rendered_pod OVERLAY... --tag TAG

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
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tests.containers.pod_checks import (check_probes_and_hooks, check_users, check_only_hello_reaches_world,
                                         stop_gracefully)
from tests.containers.pod_spec import PodRunner
from tests.containers.podman import Images, Rendered, fail, podman, say, substitution
from tests.support import kube_api
from tests.support.ports import free_port


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
        checked = check_probes_and_hooks(runner, prober)
        check_users(runner)
        check_only_hello_reaches_world(runner)

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
        stop_gracefully(runner)
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
