"""The monitoring, against the real thing: Debian's Prometheus (2.x, the major version the component
ships) scrapes a real pod's hello-service (whose /metrics carries world-service's) on loopback,
with the component's own alert and recording rules loaded, while a small bounded load runs that
includes every kind of event the dashboards show: sends, GETs, reliable reads and their
confirmations (late and unknown ones too), a reader that vanishes (its hellos are delivered
again), bad input, rate-limit refusals, and world-service stopped for a moment (503s). Then every
query of every dashboard is evaluated through Prometheus's HTTP API and must return data.
Queries of cluster-only metrics (cAdvisor's container_*) are evaluated for syntax only.

Also: promtool checks the rules and runs their unit tests (alerts_test.yml), and checks the
shipped Prometheus configuration (see test_the_shipped_prometheus_configuration_is_valid for
what Debian's promtool cannot check)."""

import concurrent.futures
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.support.pod import ROOT, Pod
from tests.support.ports import free_port
from tests.support.processes import Process, wait_until

MONITORING = ROOT / "deploy" / "components" / "monitoring"
RULES = MONITORING / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
# Metrics only a cluster has (the kubelet's cAdvisor): their queries are checked for syntax.
CLUSTER_ONLY = re.compile(r"\bcontainer_\w+")
POD = "monitoring-test-pod"
LOAD = ROOT / "deploy" / "tools" / "load.sh"


def request(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None,
            source: str = "127.0.0.1") -> tuple[int, dict]:
    """(status, JSON body or {}) of one request from `source` (a client address)."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10, source_address=(source, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})} if data else dict(headers or {})
        connection.request(method, parsed.path + (f"?{parsed.query}" if parsed.query else ""), body=data,
                           headers=all_headers)
        response = connection.getresponse()
        text = response.read().decode()
        try:
            return response.status, json.loads(text) if text else {}
        except json.JSONDecodeError:
            return response.status, {}
    finally:
        connection.close()


class Monitored:
    def __init__(self, prometheus: str, hello: str):
        self.prometheus, self.hello = prometheus, hello


@pytest.fixture(scope="module")
def monitored():
    """A pod without nginx (tests/support/pod.py: hello on a free port, world on its Unix socket,
    embedded store) under a bounded load, scraped by a real Prometheus with the component's
    rules. Yields Prometheus's base URL and hello's."""
    assert shutil.which("prometheus"), "prometheus is missing: apt-get install -y prometheus (scripts/test.sh does this)"
    with tempfile.TemporaryDirectory(prefix="hello-monitoring-") as work:
        work = Path(work)
        pod = Pod(work, name=POD, nginx_port=None, hello_port=free_port(), env={"RUST_LOG": "warn"},
                  world_env={"WORLD_SHUTDOWN_DRAIN_MS": "0", "WORLD_LEASE_MS": "1000"},
                  hello_env={"HELLO_SHUTDOWN_DRAIN_MS": "0", "HELLO_RATE_LIMIT_PER_SECOND": "5",
                             "HELLO_RATE_LIMIT_BURST": "10"})
        prometheus_port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{
                "job_name": "hello-pods",
                "static_configs": [{"targets": [f"127.0.0.1:{pod.hello_port}"],
                                    "labels": {"pod": POD, "namespace": "scalable-hello"}}],
            }],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus_process = Process("prometheus", ["prometheus", f"--config.file={work / 'prometheus.yml'}",
                                                    f"--storage.tsdb.path={work / 'tsdb'}",
                                                    f"--web.listen-address=127.0.0.1:{prometheus_port}"], {}, work)
        try:
            pod.start()
            prometheus_process.start()
            prometheus = f"http://127.0.0.1:{prometheus_port}"
            wait_until(lambda: request(f"{prometheus}/-/ready")[0] == 200, 60, "Prometheus")

            run_load(pod)
            # Enough scrapes after the load for every rate() window to hold two samples or more.
            wait_until(lambda: scalar(prometheus, 'count_over_time(up{job="hello-pods"}[1m])') >= 5
                     and scalar(prometheus, "hello:ready_replicas") == 1, 60, "scrapes after the load")
            time.sleep(3)
            yield Monitored(prometheus, pod.hello_url)
        finally:
            prometheus_process.stop()
            pod.stop()


def run_load(pod: Pod) -> None:
    """A small, bounded load with every kind of event the dashboards show."""
    hello = pod.hello_url
    run = uuid.uuid4().hex[:6]
    sources = iter(f"127.0.4.{n}" for n in range(1, 250))
    for index in range(20):  # sends and GETs, each from its own client address
        status, _ = request(f"{hello}/hello/bob{run}", "POST", {"from": f"alice{index}"}, source=next(sources))
        assert status == 201
    assert request(f"{hello}/hello/bob{run}", source=next(sources))[0] == 200
    for index in range(5):
        request(f"{hello}/hello/carol{run}", "POST", {"from": "dave"}, source=next(sources))
    status, vanished = request(f"{hello}/hello/carol{run}/reads", "POST", source=next(sources))
    assert status == 201 and vanished["hellos"], vanished  # this reader never confirms
    time.sleep(1.5)  # its lease (WORLD_LEASE_MS=1000) runs out
    status, read = request(f"{hello}/hello/carol{run}/reads", "POST", source=next(sources))
    assert status == 201 and read["hellos"], read  # delivered again
    assert request(f"{hello}/hello/carol{run}/reads/{read['receipt']}", "DELETE", source=next(sources))[0] == 204
    assert request(f"{hello}/hello/carol{run}/reads/{vanished['receipt']}", "DELETE", source=next(sources))[0] == 410
    assert request(f"{hello}/hello/carol{run}/reads/no-such-receipt", "DELETE", source=next(sources))[0] == 404
    assert request(f"{hello}/hello/%24bad", "POST", {"from": "x"}, source=next(sources))[0] == 400
    statuses = [request(f"{hello}/hello/erin{run}", source="127.0.5.1")[0] for _ in range(30)]
    assert 429 in statuses, f"the burst of 10 was not enforced: {statuses}"
    pod.world.stop()  # world-service away for a moment: 503s
    assert request(f"{hello}/hello/frank{run}", "POST", {"from": "x"}, source=next(sources))[0] == 503
    time.sleep(2)  # scraped while away: hello_world_metrics_up 0
    pod.start()  # world again; ready once hello answers /readyz through it
    for index in range(5):
        request(f"{hello}/hello/gina{run}", "POST", {"from": f"h{index}"}, source=next(sources))
    # A read waiting for a hello (and a reliable one), answered by a send: the waiting panels.
    for path, method in [(f"/hello/ivy{run}?wait=10", "GET"), (f"/hello/ivy{run}/reads?wait=10", "POST")]:
        waiting = concurrent.futures.ThreadPoolExecutor(1).submit(request, f"{hello}{path}", method,
                                                                  source=next(sources))
        time.sleep(0.5)
        assert request(f"{hello}/hello/ivy{run}", "POST", {"from": "jo"}, source=next(sources))[0] == 201
        status, answer = waiting.result(timeout=15)
        assert status in (200, 201) and answer["hellos"], answer
    # The load generator (deploy/tools/load.sh), briefly: claims, sends, reliable reads, confirms.
    result = run_load_generator(hello, RATE="5", WORKERS="2", DURATION="3")
    assert result.returncode == 0 and "load: OK" in result.stdout, result.stdout + result.stderr
    print(result.stdout.strip().splitlines()[-1])


def run_load_generator(url: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LOAD), url], env={**os.environ, **settings}, capture_output=True, text=True,
                          timeout=120)


def query(prometheus: str, expression: str) -> list:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            document = json.load(answer)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"Prometheus refused {expression!r}: {error.read().decode()}") from error
    assert document["status"] == "success", document
    return document["data"]["result"]


def scalar(prometheus: str, expression: str) -> float:
    """The value of a one-series query; NaN while it has none."""
    result = query(prometheus, expression)
    return float(result[0]["value"][1]) if result else float("nan")


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) for every query of every dashboard."""
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((path.name, panel["title"], target["expr"]))
    return found


def test_every_dashboard_query_returns_data_from_the_running_services(monitored):
    checked, syntax_only, empty = 0, [], []
    for dashboard, title, expression in dashboard_queries():
        # Grafana's own interval variable, as Grafana would fill it for a short range.
        result = query(monitored.prometheus, expression.replace("$__rate_interval", "1m"))
        if CLUSTER_ONLY.search(expression):
            syntax_only.append(f"{title}: {expression}")
        elif not result:
            empty.append(f"{dashboard} / {title}: {expression}")
        checked += 1
    print(f"dashboard queries checked: {checked} ({checked - len(syntax_only)} returned data, "
          f"{len(syntax_only)} cluster-only, checked for syntax):")
    for line in syntax_only:
        print(f"  cluster-only: {line}")
    assert checked >= 15
    assert not empty, "dashboard queries that returned no data:\n" + "\n".join(empty)


def test_every_panel_has_a_title_a_unit_and_a_description():
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"]
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            where = f"{path.name} panel {panel.get('id')}"
            assert panel.get("title"), f"{where} has no title"
            assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit"), f"{where} ({panel['title']}) has no unit"
            assert panel.get("description"), f"{where} ({panel['title']}) has no description"
            assert panel["datasource"]["uid"] == "prometheus", f"{where} uses another datasource"


def test_no_dashboard_query_or_rule_groups_by_a_name_or_token():
    """Bounded label sets: the services never label a series with a name, token or id, and no
    query should try."""
    rules = RULES.read_text()
    for _, title, expression in dashboard_queries():
        assert not re.search(r"\b(name|token|receipt|id)\b", expression), f"{title}: {expression}"
    assert not re.search(r"by \([^)]*\b(name|token)\b", rules)


def test_the_recording_and_alert_rules_are_valid_and_their_unit_tests_pass():
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], capture_output=True, text=True,
                           cwd=Path(__file__).parent)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
              if "alert" in rule}
    cases = yaml.safe_load((Path(__file__).parent / "alerts_test.yml").read_text())["tests"]
    fired = {test["alertname"] for case in cases for test in case["alert_rule_test"] if test["exp_alerts"]}
    quiet = {test["alertname"] for case in cases for test in case["alert_rule_test"] if not test["exp_alerts"]}
    assert alerts == fired == quiet, f"every alert needs a case that fires it and one that does not: {alerts}"
    print(f"promtool: {len(alerts)} alerts, each fired and kept quiet by its unit tests ({len(cases)} cases)")


def test_the_shipped_prometheus_configuration_is_valid(tmp_path):
    """promtool check config on deploy/components/monitoring/prometheus/prometheus.yml. Debian's
    Prometheus is built without Kubernetes service discovery, so its promtool cannot parse
    `kubernetes_sd_configs`: each is swapped for an empty file_sd_configs (the only change), the
    rest (relabelling regexes, paths, TLS and credential files, rule files) is checked by promtool,
    and the swapped stanzas are checked here against the fields Prometheus 2.x accepts."""
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    allowed = {"role", "namespaces", "api_server", "selectors", "kubeconfig_file", "attach_metadata"}
    for job in config["scrape_configs"]:
        for discovery in job.pop("kubernetes_sd_configs", []):
            assert set(discovery) <= allowed, f"{job['job_name']}: unknown fields {set(discovery) - allowed}"
            assert discovery["role"] in {"node", "pod", "service", "endpoints", "endpointslice", "ingress"}
            if "namespaces" in discovery:
                assert set(discovery["namespaces"]) <= {"names", "own_namespace"}
            job.setdefault("file_sd_configs", []).append({"files": [str(tmp_path / "targets.json")]})
    (tmp_path / "targets.json").write_text("[]")
    # The rule files and the ServiceAccount files the config names, where the pod has them.
    config["rule_files"] = [str(RULES)]
    for job in config["scrape_configs"]:
        for key, holder in (("credentials_file", job.get("authorization", {})), ("ca_file", job.get("tls_config", {}))):
            if key in holder:
                (tmp_path / key).write_text("placeholder")
                holder[key] = str(tmp_path / key)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_load_generator_fails_and_says_why_when_the_app_does_not_answer():
    result = run_load_generator(f"http://127.0.0.1:{free_port()}", DURATION="1")
    assert result.returncode == 1
    assert "load: FAILED" in result.stdout and "could not claim" in result.stdout + result.stderr


def test_the_load_generator_refuses_unbounded_settings():
    for setting, value in [("RATE", "51"), ("WORKERS", "0"), ("DURATION", "3601"), ("RATE", "fast")]:
        result = run_load_generator("http://127.0.0.1:1", **{setting: value})
        assert result.returncode == 2 and f"{setting}={value} must be" in result.stderr, result.stderr


def test_the_dashboards_type_check_against_grafanas_own_schema():
    """Grafana cannot run here; its dashboard types can (npm @grafana/schema, checked with tsc):
    a field of the wrong type or shape in a dashboard fails. Installed into target/, pinned in
    dashboard-types/package.json."""
    npm = shutil.which("npm")
    assert npm, "npm is missing: apt-get install -y nodejs npm (scripts/test.sh does this)"
    here = ROOT / "target" / "dashboard-types"
    here.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "tsconfig.json"):
        shutil.copy(Path(__file__).parent / "dashboard-types" / name, here / name)
    if not (here / "node_modules" / "@grafana" / "schema").exists():
        install = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=here,
                                 capture_output=True, text=True, timeout=600)
        assert install.returncode == 0, install.stdout + install.stderr
    imports = "\n".join(f'import dashboard{i} from "{path}";' for i, path in enumerate(DASHBOARDS))
    checks = "\n".join(f"const checked{i}: Dashboard = dashboard{i} satisfies Dashboard;" for i in range(len(DASHBOARDS)))
    (here / "check.ts").write_text(f'import type {{ Dashboard }} from "@grafana/schema";\n{imports}\n{checks}\n'
                                   f"export default [{', '.join(f'checked{i}' for i in range(len(DASHBOARDS)))}];\n")
    result = subprocess.run([str(here / "node_modules" / ".bin" / "tsc"), "-p", str(here)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"{len(DASHBOARDS)} dashboard(s) type-check against @grafana/schema")
