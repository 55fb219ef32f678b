"""The Kubernetes manifests as a user gets them: each overlay rendered with plain
`kubectl kustomize` (default load rules: what `kubectl apply -k` accepts). Used by the checks
without a cluster (tests/deploy) and by the run of the rendered pod (tests/containers)."""

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["minikube", "multinode", "dev", "public", "replica-set", "gateway", "monitoring", "monitoring-operator",
            "tracing", "load", "released"]


def run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def render(overlay: str) -> str:
    """deploy/overlays/`overlay`, rendered; raises with kubectl's message when it cannot be."""
    result = run(["kubectl", "kustomize", str(ROOT / "deploy" / "overlays" / overlay)])
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize deploy/overlays/{overlay}: {result.stderr}")
    return result.stdout


def documents(text: str) -> list[dict]:
    return [document for document in yaml.safe_load_all(text) if document]


def objects(rendered: dict[str, Path], overlay: str) -> list[dict]:
    """The objects of one overlay, from the `rendered` fixture's files (tests/deploy/conftest.py)."""
    return documents(rendered[overlay].read_text())
