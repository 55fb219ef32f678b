"""Every pod of every overlay meets the "restricted" Pod Security Standard that the namespace
enforces, and every inline shell script of a container passes shellcheck."""

import pytest

from tests.support.manifests import OVERLAYS, objects, run


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                      "secret"}


def restricted_violations(name: str, spec: dict) -> list[str]:
    """What the "restricted" Pod Security Standard (which the namespace enforces) would refuse in
    one pod spec: the rules of Kubernetes' pod-security admission, baseline ones included."""
    problems = []
    pod_context = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{name}: {flag}")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"{name}: volume {volume['name']} of type {kinds - RESTRICTED_VOLUMES}")
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        where = f"{name}/{container['name']}"
        context = container.get("securityContext", {})
        if context.get("privileged"):
            problems.append(f"{where}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            problems.append(f"{where}: capabilities must drop ALL")
        if set(context.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: adds capabilities")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot must be true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{where}: runAsUser 0")
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{where}: hostPort")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_standard(rendered, overlay):
    documents = objects(rendered, overlay)
    namespace = next(d for d in documents if d["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    problems, pods = [], 0
    for document in documents:
        spec = document.get("spec", {})
        template = spec.get("jobTemplate", {}).get("spec", spec).get("template")
        if template:
            pods += 1
            problems += restricted_violations(f"{document['kind']} {document['metadata']['name']}", template["spec"])
    assert pods >= 3
    assert not problems, "\n".join(problems)
    print(f"{overlay}: {pods} pod templates meet the restricted standard")


def test_the_restricted_check_finds_what_the_standard_refuses():
    spec = {"containers": [{"name": "c", "securityContext": {"capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}], "hostNetwork": True}
    found = "\n".join(restricted_violations("pod", spec))
    for rule in ("hostNetwork", "hostPath", "allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile"):
        assert rule in found, rule


def inline_scripts(documents) -> list[tuple[str, str]]:
    """(where, script) for every `sh -c` script of every container in the manifests."""
    found = []
    for document in documents:
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            command = container.get("command", [])
            if command[:2] in (["sh", "-c"], ["bash", "-c"]):
                found.append((f"{document['metadata']['name']}/{container['name']}", command[2]))
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_inline_shell_script_passes_shellcheck(rendered, overlay, tmp_path):
    scripts = inline_scripts(objects(rendered, overlay))
    assert scripts, "the MongoDB containers carry inline scripts"
    for index, (where, script) in enumerate(scripts):
        path = tmp_path / f"{index}.sh"
        path.write_text("#!/bin/sh\n" + script)
        result = run(["shellcheck", "--shell=sh", str(path)])
        assert result.returncode == 0, f"{where}:\n{result.stdout}"
    print(f"{overlay}: {len(scripts)} inline scripts pass shellcheck")
