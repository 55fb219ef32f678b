"""The release pipeline, checked without running it (no runner, no registry here): the `released`
overlay as committed (the four app images, no release named yet), the overlay that
scripts/release-overlay.sh writes for a release (each app image by registry and digest, nothing
else changed), and the workflows' shape: which images are built from which Dockerfile, with which
build arguments, and that only the jobs that need them may write."""

import hashlib
import os
import shutil
import subprocess

import pytest
import yaml

from tests.support.manifests import ROOT, documents, objects, run

APP_IMAGES = {"hello-nginx": "deploy/nginx/Dockerfile", "hello-service": "Dockerfile.hello",
              "world-service": "Dockerfile.world", "hello-tools": "deploy/tools/Dockerfile"}
RELEASED = ROOT / "deploy" / "overlays" / "released" / "kustomization.yaml"
# Stand-ins for one release: a registry under a reserved name (RFC 2606), digests made up here.
PREFIX = "registry.invalid/someone"
DIGESTS = {name: "sha256:" + hashlib.sha256(name.encode()).hexdigest() for name in APP_IMAGES}
WORKFLOWS = ROOT / ".github" / "workflows"


def pod_images(docs) -> list[str]:
    """Every container image of every pod template (init containers included)."""
    images = []
    for document in docs:
        spec = document.get("spec", {})
        template = spec.get("jobTemplate", {}).get("spec", spec).get("template")
        if template:
            for container in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
                images.append(container["image"])
    return images


def image_name(image: str) -> str:
    """hello-service out of registry/owner/hello-service@sha256:... or hello-service:local."""
    return image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]


def without_app_images(docs) -> list[dict]:
    """The documents with every app image's reference replaced by its bare name."""
    def walk(node):
        if isinstance(node, dict):
            return {key: (image_name(value) if key == "image" and image_name(value) in APP_IMAGES else walk(value))
                    for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node
    return [walk(document) for document in docs]


def release_overlay(tmp_path, *arguments) -> subprocess.CompletedProcess:
    """Runs scripts/release-overlay.sh in a copy of scripts/ and deploy/."""
    for folder in ("scripts", "deploy"):
        if not (tmp_path / folder).exists():
            shutil.copytree(ROOT / folder, tmp_path / folder)
    return run([str(tmp_path / "scripts" / "release-overlay.sh"), *arguments])


def test_the_committed_released_overlay_is_the_minikube_one_and_names_no_release(rendered):
    released, minikube = objects(rendered, "released"), objects(rendered, "minikube")
    images = pod_images(released)
    app = sorted({image for image in images if image_name(image) in APP_IMAGES})
    assert app == sorted(f"{name}:unreleased" for name in APP_IMAGES), app
    assert without_app_images(released) == without_app_images(minikube), "released differs from minikube beyond its images"
    kustomization = yaml.safe_load(RELEASED.read_text())
    assert sorted(entry["name"] for entry in kustomization["images"]) == sorted(APP_IMAGES)
    assert all(set(entry) == {"name", "newTag"} for entry in kustomization["images"]), "no registry or digest before a release"


def test_the_release_script_names_each_app_image_by_registry_and_digest(tmp_path):
    result = release_overlay(tmp_path, PREFIX, "0.2.0", *(f"{name}={digest}" for name, digest in DIGESTS.items()))
    assert result.returncode == 0, result.stderr
    written = tmp_path / "deploy" / "overlays" / "released"
    rendering = run(["kubectl", "kustomize", str(written)])
    assert rendering.returncode == 0, rendering.stderr
    docs = documents(rendering.stdout)
    app = {image for image in pod_images(docs) if image_name(image) in APP_IMAGES}
    assert app == {f"{PREFIX}/{name}@{digest}" for name, digest in DIGESTS.items()}, app
    committed = documents(run(["kubectl", "kustomize", str(RELEASED.parent)]).stdout)
    assert without_app_images(docs) == without_app_images(committed), "the script changed more than the images"
    mine, theirs = yaml.safe_load((written / "kustomization.yaml").read_text()), yaml.safe_load(RELEASED.read_text())
    assert {k: v for k, v in mine.items() if k != "images"} == {k: v for k, v in theirs.items() if k != "images"}
    assert "0.2.0" in (written / "kustomization.yaml").read_text().splitlines()[0]


@pytest.mark.parametrize("arguments, complaint", [
    ([PREFIX, "0.2.0", *(f"{n}={d}" for n, d in DIGESTS.items() if n != "hello-tools"), "hello-tools=sha256:abc"],
     "is not a digest"),
    ([PREFIX, "0.2.0", *(f"{n}={d}" for n, d in DIGESTS.items() if n != "hello-tools"), "hello-nginx=" + DIGESTS["hello-nginx"]],
     "given twice"),
    ([PREFIX, "0.2.0", *(f"{n}={d}" for n, d in DIGESTS.items() if n != "hello-tools"), "mongo=" + DIGESTS["hello-tools"]],
     "is not one of"),
    ([PREFIX, "v0.2.0", *(f"{n}={d}" for n, d in DIGESTS.items())], "is not a version"),
    (["Registry.invalid/Someone", "0.2.0", *(f"{n}={d}" for n, d in DIGESTS.items())], "lower case"),
    ([PREFIX, "0.2.0", *(f"{n}={d}" for n, d in DIGESTS.items() if n != "hello-tools")], "usage"),
])
def test_the_release_script_refuses_what_is_not_a_release_and_leaves_the_overlay(tmp_path, arguments, complaint):
    result = release_overlay(tmp_path, *arguments)
    assert result.returncode == 2 and complaint in result.stderr, result.stderr
    assert (tmp_path / "deploy" / "overlays" / "released" / "kustomization.yaml").read_text() == RELEASED.read_text()


REPOSITORY_URL = "https://git.invalid/someone/hello"
COSIGN_STUB = """#!/bin/sh
echo "cosign $*" >> "$COSIGN_LOG"
case "$2" in *"$COSIGN_REFUSE"*) [ -n "$COSIGN_REFUSE" ] && exit 1 ;; esac
exit 0
"""


def verify_release(tmp_path, refuse="", prefix=PREFIX, tag="v0.2.0"):
    """scripts/verify-release.sh in the copy, against a stub cosign that records its calls and
    refuses the images whose reference holds `refuse`."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    (stubs / "cosign").write_text(COSIGN_STUB)
    (stubs / "cosign").chmod(0o755)
    log = tmp_path / "cosign.log"
    log.write_text("")
    environment = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "COSIGN_LOG": str(log), "COSIGN_REFUSE": refuse}
    result = run([str(tmp_path / "scripts" / "verify-release.sh"), prefix, REPOSITORY_URL, tag], env=environment)
    return result, log.read_text().splitlines()


def test_verify_release_checks_each_app_image_by_digest_and_its_signature_at_that_tag(tmp_path):
    assert release_overlay(tmp_path, PREFIX, "0.2.0", *(f"{n}={d}" for n, d in DIGESTS.items())).returncode == 0
    result, calls = verify_release(tmp_path)
    assert result.returncode == 0, result.stderr
    identity = f"{REPOSITORY_URL}/.github/workflows/release.yml@refs/tags/v0.2.0"
    assert sorted(calls) == sorted(
        f"cosign verify {PREFIX}/{name}@{digest} --certificate-identity {identity} "
        "--certificate-oidc-issuer https://token.actions.githubusercontent.com" for name, digest in DIGESTS.items())
    assert "OK" in result.stdout


def test_verify_release_refuses_an_image_swapped_for_a_tag_or_another_registry_or_unsigned(tmp_path):
    assert release_overlay(tmp_path, PREFIX, "0.2.0", *(f"{n}={d}" for n, d in DIGESTS.items())).returncode == 0
    overlay = tmp_path / "deploy" / "overlays" / "released" / "kustomization.yaml"
    written = overlay.read_text()
    unsigned, _ = verify_release(tmp_path, refuse="world-service")
    assert unsigned.returncode != 0 and "world-service" in unsigned.stderr and "signature" in unsigned.stderr
    elsewhere, _ = verify_release(tmp_path, prefix="registry.invalid/another")
    assert elsewhere.returncode != 0 and "not registry.invalid/another/hello" in elsewhere.stderr
    overlay.write_text(written.replace(f"    digest: {DIGESTS['hello-service']}", '    newTag: "1"'))
    by_tag, calls = verify_release(tmp_path)
    assert by_tag.returncode != 0 and "hello-service" in by_tag.stderr and "by digest" in by_tag.stderr
    assert not any("hello-service" in call for call in calls), "nothing unchecked is verified as if it were fine"
    overlay.write_text(written)
    old_tag, _ = verify_release(tmp_path, tag="0.2.0")
    assert old_tag.returncode != 0 and "release tag" in old_tag.stderr


def workflow(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as true
    return document


def test_the_release_workflow_builds_the_four_images_and_only_its_jobs_that_need_to_may_write():
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {"contents": "read"}
    jobs = release["jobs"]
    assert {name: job["permissions"] for name, job in jobs.items()} == {
        "prepare": {"contents": "read"},
        "images": {"contents": "read", "packages": "write"},
        "sign": {"contents": "read", "packages": "write", "id-token": "write", "attestations": "write"},
        "overlay": {"contents": "write", "pull-requests": "write"},
    }
    # The OIDC token only where no build tooling runs.
    assert not any(step.get("uses", "").startswith(("docker/setup-", "docker/build-push-action"))
                   for step in jobs["sign"]["steps"])
    assert jobs["prepare"]["environment"] == "release"
    checks = next(step["run"] for step in jobs["prepare"]["steps"] if step.get("name") == "Check what is released")
    assert "merge-base --is-ancestor" in checks and "@[0-9a-f]{40}" in checks
    assert any("imagetools inspect" in step.get("run", "") for step in jobs["images"]["steps"])
    assert all(step["with"].get("persist-credentials") is False
               for job in jobs.values() for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@"))
    built = {entry["image"]: entry["dockerfile"] for entry in jobs["images"]["strategy"]["matrix"]["include"]}
    assert built == APP_IMAGES
    assert all((ROOT / dockerfile).is_file() for dockerfile in built.values())
    build = next(step for step in jobs["images"]["steps"] if step.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["context"] == "." and build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["sbom"] is True and build["with"]["provenance"] == "mode=max"
    arguments = dict(line.strip().split("=", 1) for line in build["with"]["build-args"].splitlines() if line.strip())
    assert set(arguments) == {"VERSION", "SOURCE_URL"}
    steps = "\n".join(step.get("run", "") for step in jobs["overlay"]["steps"])
    assert "scripts/release-overlay.sh" in steps
    assert all(name in steps for name in APP_IMAGES)


def test_ci_runs_stages_that_test_sh_has_and_may_only_read():
    ci = workflow("ci.yml")
    assert ci["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in ci["jobs"].values())
    listed = run([str(ROOT / "scripts" / "test.sh"), "--list"]).stdout.split("\n")
    stages = [line.split()[0] for line in listed if line.strip()]
    run_here = ci["jobs"]["stage"]["strategy"]["matrix"]["stage"]
    assert set(run_here) <= set(stages) and set(stages) - set(run_here) == {"containers"}, run_here
