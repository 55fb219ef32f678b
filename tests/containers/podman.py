"""What the run of the rendered pod (rendered_pod.py) shares: podman, the rendered objects, the
images built from the repo, Kubernetes' $(VAR) expansion, and how it reports."""

import re
import subprocess
import sys

from tests.support.manifests import documents, render

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
        try:
            self.objects = documents(render(overlay))
        except RuntimeError as error:
            fail(str(error))

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
