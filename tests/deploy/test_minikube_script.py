"""docker-build-upload-minikube.sh in both modes, against stub docker, minikube and kubectl
commands that record what they are asked (and a stub registry on loopback)."""

import os
import socket
import stat

import pytest

from tests.support.manifests import ROOT, run
from tests.support.ports import free_port, is_listening


STUB = r"""#!/usr/bin/env bash
# Stub {name}: records its arguments, answers like the real command would.
echo "{name} $*" >> "$STUB_LOG"
state="$STUB_STATE"
case "{name} $1 $2" in
  "docker info"*|"docker build"*|"docker push"*|"docker rm"*) exit 0 ;;
  "docker create"*) echo stub-container ;;
  "docker cp"*) echo '{{"bomFormat": "CycloneDX"}}' > "$3" ;;
  "minikube status"*)
    if [ -e "$state/stopped" ]; then echo Stopped; exit 7; fi
    echo Running ;;
  "minikube image load") exit 0 ;;
  "minikube addons list")
    if [ -e "$state/registry-enabled" ]; then status=enabled; else status=disabled; fi
    echo "| registry                    | minikube | $status    | Google |" ;;
  "minikube addons enable") touch "$state/registry-enabled" ;;
  "kubectl port-forward"*)
    # Serve a registry's /v2/ on the forwarded port, as the real port-forward would.
    port="${{5%%:*}}"
    exec python3 -c 'import http.server,sys
class R(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/v2/" else 404); self.end_headers(); self.wfile.write(b"{{}}")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), R).serve_forever()' "$port" ;;
  *) echo "stub {name}: unexpected: $*" >&2; exit 3 ;;
esac
"""


@pytest.fixture()
def stubs(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "minikube", "kubectl"):
        path = bin_dir / name
        path.write_text(STUB.format(name=name))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "state"
    state.mkdir()
    log = tmp_path / "calls.log"
    log.touch()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log), "STUB_STATE": str(state),
           "SBOM_DIR": str(tmp_path / "sbom")}

    def script(*args):
        result = run([str(ROOT / "docker-build-upload-minikube.sh"), *args], env=env, timeout=60)
        calls = log.read_text().splitlines()
        log.write_text("")
        return result, calls

    script.state = state
    script.sboms = tmp_path / "sbom"
    return script


def test_single_node_mode_builds_and_loads_the_four_images_and_writes_their_sboms(stubs):
    result, calls = stubs()
    assert result.returncode == 0, result.stderr
    expected = []
    for name, dockerfile in [("hello-nginx", "deploy/nginx/Dockerfile"), ("hello-service", "Dockerfile.hello"),
                             ("world-service", "Dockerfile.world"), ("hello-tools", "deploy/tools/Dockerfile")]:
        expected += [f"docker build -f {dockerfile} -t {name}:local .",
                     f"docker create {name}:local",
                     f"docker cp stub-container:/usr/share/sbom/{name}.cdx.json {stubs.sboms}/{name}.cdx.json",
                     "docker rm stub-container",
                     f"minikube image load {name}:local"]
    assert [call for call in calls if not call.startswith(("docker info", "minikube status"))] == expected
    assert sorted(path.name for path in stubs.sboms.iterdir()) == [
        "hello-nginx.cdx.json", "hello-service.cdx.json", "hello-tools.cdx.json", "world-service.cdx.json"]
    assert "Done:" in result.stdout


def test_registry_mode_enables_the_addon_forwards_and_pushes_and_is_safe_to_repeat(stubs):
    port = free_port()
    result, calls = stubs("--registry", "--registry-port", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "minikube addons enable registry" in calls
    assert f"kubectl port-forward --namespace kube-system service/registry {port}:80" in calls
    for name, dockerfile in [("hello-nginx", "deploy/nginx/Dockerfile"), ("hello-service", "Dockerfile.hello"),
                             ("world-service", "Dockerfile.world"), ("hello-tools", "deploy/tools/Dockerfile")]:
        image = f"localhost:{port}/{name}:dev"
        assert f"docker build -f {dockerfile} -t {image} ." in calls
        assert f"docker push {image}" in calls
    assert "Done:" in result.stdout

    again, calls = stubs("--registry", "--registry-port", str(port))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "minikube addons enable registry" not in calls, "the addon is already enabled"
    assert not is_listening("127.0.0.1", port), "the port-forward was stopped afterwards"


def test_it_stops_with_the_fix_when_minikube_is_not_running(stubs):
    (stubs.state / "stopped").touch()
    result, calls = stubs()
    assert result.returncode != 0
    assert "minikube start" in result.stderr
    assert not [call for call in calls if call.startswith("docker build")]


def test_it_names_another_port_when_5000_is_taken_by_something_else(stubs):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result, _ = stubs("--registry", "--registry-port", str(port))
    assert result.returncode != 0
    assert "--registry-port" in result.stderr


def test_unknown_options_print_usage_and_fail(stubs):
    result, calls = stubs("--frobnicate")
    assert result.returncode != 0 and "unknown option" in result.stderr and "--registry" in result.stderr
    assert calls == []
