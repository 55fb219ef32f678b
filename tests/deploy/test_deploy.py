"""Deployment files, checked without a cluster: every overlay renders, validates strictly against
Kubernetes' schemas and passes checkov; skaffold.yaml validates against Skaffold's schema; the
Dockerfiles pass hadolint; the scripts pass shellcheck. (The Pod Security Standard:
test_pod_security.py; the minikube script: test_minikube_script.py.)"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support.manifests import OVERLAYS, ROOT, objects, render, run

VENV_BIN = Path(sys.executable).parent
# Custom resources, validated against their CustomResourceDefinition's schema (schemas/README.md).
CRD_DIR = ROOT / "tests" / "deploy" / "schemas" / "crds"
CRDS = {("gateway.networking.k8s.io/v1", "HTTPRoute"): CRD_DIR / "gateway.networking.k8s.io_httproutes.yaml",
        ("monitoring.coreos.com/v1", "PodMonitor"): CRD_DIR / "monitoring.coreos.com_podmonitors.yaml",
        ("monitoring.coreos.com/v1", "PrometheusRule"): CRD_DIR / "monitoring.coreos.com_prometheusrules.yaml"}
SKAFFOLD_SCHEMA = ROOT / "tests" / "deploy" / "schemas" / "skaffold-v4beta14.json"  # see schemas/README.md


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_the_whole_product(rendered, overlay):
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered[overlay].read_text()) if doc]
    for kind in ["Namespace", "Deployment", "Service", "StatefulSet", "ConfigMap", "Job", "ServiceAccount", "Role",
                 "RoleBinding", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"]:
        assert kind in kinds, f"{overlay} lacks a {kind}"
    assert {"Ingress", "HTTPRoute"} & set(kinds), f"{overlay} has neither an Ingress nor an HTTPRoute"
    print(f"{overlay}: {len(kinds)} objects")


MONITORING_LABEL = {"scalable-hello/monitoring": "true"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_nginx_is_public_and_hello_only_to_the_monitoring_label(rendered, overlay):
    """The NetworkPolicy contract (docs/deploy.md): 8080 from anywhere; 8081 only from Prometheus's
    pods with the monitoring label, in a namespace with the monitoring label; nothing else into
    the app pod. Only overlays with the monitoring component, whose Prometheus runs in the app's
    namespace, label that namespace."""
    policy = next(doc for doc in yaml.safe_load_all(rendered[overlay].read_text())
                  if doc and doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] == "hello-ingress")
    rules = {tuple(port["port"] for port in rule["ports"]): rule.get("from") for rule in policy["spec"]["ingress"]}
    assert set(rules) == {(8080,), (8081,)}, rules
    assert rules[(8080,)] is None, "nginx's 8080 is open to every source"
    prometheus = {"app.kubernetes.io/name": "prometheus", **MONITORING_LABEL}
    assert rules[(8081,)] == [{"namespaceSelector": {"matchLabels": MONITORING_LABEL},
                               "podSelector": {"matchLabels": prometheus}}], rules
    namespace = next(doc for doc in yaml.safe_load_all(rendered[overlay].read_text())
                     if doc and doc["kind"] == "Namespace" and doc["metadata"]["name"] == "scalable-hello")
    labelled = namespace["metadata"]["labels"].get("scalable-hello/monitoring") == "true"
    with_prometheus = any(doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == "prometheus"
                          for doc in yaml.safe_load_all(rendered[overlay].read_text()))
    assert labelled == with_prometheus, f"{overlay}: namespace labels {namespace['metadata']['labels']}"


def latest_kubernetes_version() -> str:
    from kubernetes_validate import utils
    return utils.latest_version()


@pytest.mark.parametrize("version", ["1.28.0", "1.33.0", "latest"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_manifests_validate_strictly(rendered, overlay, version, tmp_path):
    """Kubernetes' own kinds against its schemas; custom resources in test_custom_resources_..."""
    version = latest_kubernetes_version() if version == "latest" else version
    builtin = [d for d in objects(rendered, overlay) if (d["apiVersion"], d["kind"]) not in CRDS]
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    result = run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", "-k", version, str(path)])
    assert result.returncode == 0, f"{overlay} on Kubernetes {version}:\n{result.stdout}{result.stderr}"
    print(f"{overlay}: valid for Kubernetes {version}")


def test_checkov_finds_no_failed_check(rendered):
    files = [*(rendered[overlay] for overlay in OVERLAYS if overlay != "dev"), ROOT / "Dockerfile.hello", ROOT / "Dockerfile.world",
             ROOT / "deploy" / "nginx" / "Dockerfile", ROOT / "deploy" / "tools" / "Dockerfile"]
    command = [str(VENV_BIN / "checkov"), "--framework", "kubernetes", "dockerfile", "--quiet", "--compact",
               "--skip-download", "--output", "json"]
    for path in files:
        command += ["-f", str(path)]
    result = run(command)
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [check for report in reports for check in report["results"].get("failed_checks", [])]
    skipped = [check for report in reports for check in report["results"].get("skipped_checks", [])]
    passed = sum(len(report["results"].get("passed_checks", [])) for report in reports)
    print(f"checkov: {passed} passed, {len(failed)} failed, {len(skipped)} skipped")
    for check in skipped:
        assert check["check_result"].get("suppress_comment"), f"{check['check_id']} skipped without a reason"
    assert not failed, "\n".join(f"{c['check_id']} {c['check_name']} ({c['resource']})" for c in failed)
    assert result.returncode == 0


def test_the_dev_overlay_differs_only_where_skaffold_sync_needs_it(rendered):
    """Skaffold's dev profile syncs frontend/ into nginx: only nginx's root filesystem is writable."""
    def documents(overlay):
        return [d for d in yaml.safe_load_all(rendered[overlay].read_text()) if d]

    dev, minikube = documents("dev"), documents("minikube")
    nginx = next(d for d in dev if d["kind"] == "Deployment" and d["metadata"]["name"] == "hello")["spec"]["template"]["spec"]["containers"][0]
    assert nginx["name"] == "nginx" and nginx["securityContext"]["readOnlyRootFilesystem"] is False
    nginx["securityContext"]["readOnlyRootFilesystem"] = True
    assert dev == minikube


def test_skaffold_yaml_validates_against_the_v4beta14_schema():
    schema = json.loads(SKAFFOLD_SCHEMA.read_text())
    document = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert document["apiVersion"] == "skaffold/v4beta14"
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(document))

    def explain(error, depth=0):
        lines = ["  " * depth + f"{list(error.absolute_path)}: {error.message[:200]}"]
        for child in (error.context or [])[:5]:
            lines += explain(child, depth + 1)
        return lines

    assert not errors, "\n".join(line for error in errors for line in explain(error))


def test_dockerfiles_pass_hadolint():
    files = [ROOT / "Dockerfile.hello", ROOT / "Dockerfile.world", ROOT / "deploy" / "nginx" / "Dockerfile",
             ROOT / "deploy" / "tools" / "Dockerfile"]
    result = run([str(VENV_BIN / "hadolint"), "--no-color", *map(str, files)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_pass_shellcheck():
    scripts = [ROOT / "docker-build-upload-minikube.sh", *sorted((ROOT / "scripts").glob("*.sh")),
               *sorted((ROOT / "deploy").rglob("*.sh")), ROOT / ".ci" / "run"]
    result = run(["shellcheck", *map(str, scripts)])
    assert result.returncode == 0, result.stdout + result.stderr


def referenced_secrets(document) -> set:
    """Names of the Secrets an object's pods (or an Ingress) use."""
    names = set()

    def walk(node):
        if isinstance(node, dict):
            for key in ("secretKeyRef", "secretRef"):
                if isinstance(node.get(key), dict):
                    names.add(node[key]["name"])
            if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
                names.add(node["secret"]["secretName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document.get("spec", {}))
    if document["kind"] == "Ingress":
        names |= {tls["secretName"] for tls in document["spec"].get("tls", [])}
    return names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_the_pods_use_is_made_by_the_secrets_job_and_none_is_tracked(rendered, overlay):
    """No Secret is in the manifests (no credential in git): each one a pod or the Ingress uses is
    created at deploy time by the hello-secrets Job, which knows how to make it."""
    documents = [d for d in yaml.safe_load_all(rendered[overlay].read_text()) if d]
    assert not [d for d in documents if d["kind"] == "Secret"], "a Secret with values is in the manifests"
    job = next(d for d in documents if d["kind"] == "Job" and d["metadata"]["name"] == "hello-secrets")
    made = set(job["spec"]["template"]["spec"]["containers"][0]["args"])
    used = set().union(*(referenced_secrets(d) for d in documents if d["kind"] != "Job"))
    assert used and used <= made, f"used but never made: {used - made}"
    script = (ROOT / "deploy" / "tools" / "make-secrets.sh").read_text()
    for name in made:
        assert f"\n    {name})" in script, f"make-secrets.sh has no recipe for {name}"
    print(f"{overlay}: Secrets made at deploy time: {sorted(made)}")


def test_the_secrets_job_may_only_create_secrets():
    documents = [d for d in yaml.safe_load_all(render("minikube")) if d]
    role = next(d for d in documents if d["kind"] == "Role" and d["metadata"]["name"] == "hello-secrets")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    account = next(d for d in documents if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "hello-secrets")
    assert account["automountServiceAccountToken"] is False
    for document in documents:
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        if spec and document["metadata"]["name"] != "hello-secrets":
            assert spec.get("automountServiceAccountToken") is False, f"{document['metadata']['name']} mounts a token"


def test_the_mongodb_scripts_are_valid_javascript():
    """They run only in a real MongoDB (none here): check at least that mongosh could parse them."""
    scripts = sorted((ROOT / "deploy").rglob("*.js"))
    assert scripts
    for script in scripts:
        result = run(["node", "--check", str(script)])
        assert result.returncode == 0, f"{script}: {result.stderr}"


def env_config(documents, prefix="hello-env") -> dict:
    return next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix))["data"]


def test_the_public_overlay_makes_inboxes_private_limits_stricter_and_hides_info(rendered):
    public, minikube = objects(rendered, "public"), objects(rendered, "minikube")
    shared, local = env_config(public), env_config(minikube)
    assert shared["HELLO_REQUIRE_CLAIM"] == "true" and "HELLO_REQUIRE_CLAIM" not in local
    # world decides, by its own setting; hello's refuses reads without a token before asking.
    world_public, world_local = env_config(public, "world-env"), env_config(minikube, "world-env")
    assert world_public["WORLD_REQUIRE_CLAIM"] == "true" and "WORLD_REQUIRE_CLAIM" not in world_local
    # world answers hello alone: a Unix socket, no TCP address.
    assert "WORLD_LISTEN" not in world_local and world_local["WORLD_LISTEN_SOCKET"].startswith("/run/world/")
    for limit in ("HELLO_RATE_LIMIT_PER_SECOND", "HELLO_RATE_LIMIT_BURST"):
        assert int(shared[limit]) < int(local[limit]), limit
    assert int(shared["HELLO_CLAIM_RATE_PER_MINUTE"]) < 5 and int(shared["HELLO_CLAIM_BURST"]) < 3, "below the defaults"
    nginx = next(d for d in public if d["kind"] == "Deployment" and d["metadata"]["name"] == "hello")["spec"]["template"]["spec"]["containers"][0]
    mount = next(m for m in nginx["volumeMounts"] if m["mountPath"] == "/etc/nginx/pod/hidden-paths.conf")
    hidden = next(d for d in public if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("nginx-hidden-paths"))
    assert re.search(r"^\s*/info 1;$", hidden["data"][mount["subPath"]], re.M)


@pytest.mark.parametrize("overlay", [o for o in OVERLAYS if o != "gateway"])
def test_the_ingress_serves_https_only_with_the_certificate_made_at_deploy_time(rendered, overlay):
    documents = objects(rendered, overlay)
    ingress = next(d for d in documents if d["kind"] == "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["hello.local"], "secretName": "hello-tls"}]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    nginx = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "hello")["spec"]["template"]["spec"]["containers"][0]
    assert any(m["mountPath"] == "/etc/nginx/pod/trusted-proxies.conf" for m in nginx["volumeMounts"]), \
        "behind the Ingress, nginx must trust the controller to name the client"


def test_the_replica_set_has_three_members_a_key_made_at_deploy_time_and_an_initiation_job(rendered):
    documents = objects(rendered, "replica-set")
    mongodb = next(d for d in documents if d["kind"] == "StatefulSet")
    assert mongodb["spec"]["replicas"] == 3
    container = mongodb["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][container["args"].index("--replSet") + 1] == "rs0"
    assert "--keyFile" in container["args"]
    job = next(d for d in documents if d["kind"] == "Job" and d["metadata"]["name"] == "hello-secrets")
    assert "mongodb-keyfile" in job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert any(d["kind"] == "Job" and d["metadata"]["name"] == "mongodb-replica-set-init" for d in documents)
    world = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "hello")["spec"]["template"]["spec"]["containers"][2]
    uri = next(e["value"] for e in world["env"] if e["name"] == "WORLD_MONGODB_URI")
    assert "replicaSet=rs0" in uri and all(f"mongodb-{n}.mongodb:27017" in uri for n in range(3))


def go_patterns_for_python(node):
    """Go's regular expressions allow a flag group mid-pattern (`^(?i)(abort|warn)?$`); Python's
    only at the start. Moving it there means the same for these patterns."""
    if isinstance(node, dict):
        return {key: (("(?i)" + value.replace("(?i)", "")) if key == "pattern" and "(?i)" in value
                      else go_patterns_for_python(value)) for key, value in node.items()}
    if isinstance(node, list):
        return [go_patterns_for_python(value) for value in node]
    return node


def crd_schema(path: Path, version: str) -> dict:
    crd = yaml.safe_load(path.read_text())
    schema = next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version)
    return go_patterns_for_python(schema)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_their_crd_schemas(rendered, overlay):
    found = 0
    for document in objects(rendered, overlay):
        key = (document["apiVersion"], document["kind"])
        if key in CRDS:
            schema = crd_schema(CRDS[key], document["apiVersion"].split("/")[1])
            errors = list(jsonschema.Draft7Validator(schema).iter_errors(document))
            assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors)
            found += 1
        else:
            group = document["apiVersion"].split("/")[0] if "/" in document["apiVersion"] else ""
            assert "." not in group or group.endswith(".k8s.io") and group != "gateway.networking.k8s.io", \
                f"{key} is a custom resource without a schema in CRDS"
            assert group != "monitoring.coreos.com", f"{key} is a custom resource without a schema in CRDS"
    print(f"{overlay}: {found} custom resources valid")


def test_the_crd_check_refuses_a_broken_route():
    schema = crd_schema(CRDS[("gateway.networking.k8s.io/v1", "HTTPRoute")], "v1")
    broken = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "x"},
              "spec": {"rules": [{"matches": [{"path": {"type": "Sideways", "value": "/"}}]}]}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_the_gateway_route_sends_everything_to_the_app_service(rendered):
    documents = objects(rendered, "gateway")
    route = next(d for d in documents if d["kind"] == "HTTPRoute")
    service = next(d for d in documents if d["kind"] == "Service" and d["metadata"]["name"] == "hello")
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["backendRefs"] == [{"name": "hello", "port": service["spec"]["ports"][0]["port"]}]
    job = next(d for d in documents if d["kind"] == "Job" and d["metadata"]["name"] == "hello-secrets")
    assert "hello-tls" in job["spec"]["template"]["spec"]["containers"][0]["args"]


def test_every_overlay_renders_in_a_fresh_clone_with_default_load_rules(tmp_path):
    """What a new user does first: clone, then `kubectl kustomize` / `kubectl apply -k`, with no
    step before it (nothing generated, nothing outside the clone)."""
    clone = tmp_path / "clone"
    result = run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)])
    assert result.returncode == 0, result.stderr
    for overlay in OVERLAYS:
        result = run(["kubectl", "kustomize", str(clone / "deploy" / "overlays" / overlay)])
        assert result.returncode == 0, f"{overlay} in a fresh clone:\n{result.stderr}"
    print(f"{len(OVERLAYS)} overlays render in a fresh clone of the committed tree")


def test_the_operators_prometheus_rule_holds_exactly_the_alert_rules_file():
    """One set of rules: deploy/components/monitoring/prometheus/alerts.yml, wrapped unchanged."""
    shipped = yaml.safe_load((ROOT / "deploy" / "components" / "monitoring" / "prometheus" / "alerts.yml").read_text())
    wrapped = yaml.safe_load((ROOT / "deploy" / "components" / "monitoring-operator" / "prometheus-rule.yaml").read_text())
    assert wrapped["spec"]["groups"] == shipped["groups"], "copy alerts.yml's groups into prometheus-rule.yaml"


def test_the_crd_check_refuses_a_rule_group_without_a_name():
    schema = crd_schema(CRDS[("monitoring.coreos.com/v1", "PrometheusRule")], "v1")
    broken = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
              "spec": {"groups": [{"rules": [{"alert": "A", "expr": "up == 0"}]}]}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_only_prometheus_may_scrape_the_app_and_it_runs_with_least_privilege(rendered):
    documents = objects(rendered, "monitoring")
    prometheus = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "prometheus")
    assert prometheus["spec"]["template"]["metadata"]["labels"]["scalable-hello/monitoring"] == "true"
    grafana = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "grafana")
    assert "scalable-hello/monitoring" not in grafana["spec"]["template"]["metadata"]["labels"]
    verbs = {(tuple(rule["resources"]), tuple(rule["verbs"]))
             for d in documents if d["kind"] in ("Role", "ClusterRole") and d["metadata"]["name"].endswith("prometheus")
             for rule in d["rules"]}
    assert verbs == {(("pods",), ("get", "list", "watch")), (("nodes",), ("list", "watch")),
                     (("nodes/metrics",), ("get",))}, verbs
    job = next(d for d in documents if d["kind"] == "Job" and d["metadata"]["name"] == "hello-secrets")
    assert "grafana-admin" in job["spec"]["template"]["spec"]["containers"][0]["args"]
    image = prometheus["spec"]["template"]["spec"]["containers"][0]["image"]
    tested = subprocess.run(["promtool", "--version"], capture_output=True, text=True).stdout if shutil.which("promtool") else ""
    assert re.search(r":v2\.\d+\.\d+$", image), f"{image}: keep Prometheus on 2.x, the major version the queries are tested with"
    if tested:
        assert "version 2." in tested
