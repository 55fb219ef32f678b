"""The release pipeline, checked without running it (no runner, no registry here): the `released`
overlay as committed (the four app images, no release named yet), the overlay that
scripts/release-overlay.sh writes for a release (each app image by registry and digest, nothing
else changed), and the workflows' shape: which images are built from which Dockerfile, with which
build arguments, and that only the jobs that need them may write."""

import hashlib
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
        "images": {"contents": "read", "packages": "write", "id-token": "write", "attestations": "write"},
        "overlay": {"contents": "write", "pull-requests": "write"},
    }
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
