"""deploy/sbom/files-sbom.sh writes valid CycloneDX and refuses what it cannot write safely; the
containers stage's SBOM check (tests/containers/sboms.py) can fail. The images' own SBOMs are
checked where the images are built (the containers stage)."""

import hashlib
import json
import os
import subprocess

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.containers.sboms import check
from tests.support.manifests import ROOT

SCRIPT = ROOT / "deploy" / "sbom" / "files-sbom.sh"


@pytest.fixture(params=["dash", "busybox"])
def shell(request, tmp_path_factory):
    """The script runs in nginx's Alpine image (busybox's sh and applets) and in Debian (dash and
    coreutils): (command, environment) for each."""
    if request.param == "dash":
        return ["sh"], dict(os.environ)
    applets = tmp_path_factory.mktemp("busybox")
    subprocess.run(["busybox", "--install", "-s", str(applets)], check=True)
    return ["busybox", "sh"], {**os.environ, "PATH": f"{applets}:{os.environ['PATH']}"}


@pytest.fixture()
def files_sbom(shell):
    command, environment = shell

    def run(tmp_path, *paths, name="hello-nginx", base="docker.io/library/nginx:1.30.2-alpine"):
        output = tmp_path / "out" / f"{name}.cdx.json"
        result = subprocess.run([*command, str(SCRIPT), name, "0.2.0", base, str(output), *map(str, paths)],
                                capture_output=True, text=True, timeout=30, env=environment)
        return result, output
    return run


def test_files_sbom_lists_each_file_with_its_hash_and_the_base(tmp_path, files_sbom):
    (tmp_path / "pod").mkdir()
    (tmp_path / "pod" / "nginx.conf").write_text("events {}\n")
    (tmp_path / "index.html").write_text("<!doctype html>\n")
    result, output = files_sbom(tmp_path, tmp_path / "pod", tmp_path / "index.html")
    assert result.returncode == 0, result.stderr
    document = json.loads(output.read_text())
    files = {c["name"]: c["hashes"][0]["content"] for c in document["components"] if c["type"] == "file"}
    assert files == {
        f"{tmp_path}/pod/nginx.conf": hashlib.sha256(b"events {}\n").hexdigest(),
        f"{tmp_path}/index.html": hashlib.sha256(b"<!doctype html>\n").hexdigest(),
    }
    base = [c for c in document["components"] if c["type"] == "container"]
    assert [(b["name"], b["version"]) for b in base] == [("docker.io/library/nginx", "1.30.2-alpine")]
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(output.read_text()) is None


def test_a_base_on_a_registry_with_a_port_keeps_its_name_whole(tmp_path, files_sbom):
    (tmp_path / "a").write_text("a")
    result, output = files_sbom(tmp_path, tmp_path / "a", base="localhost:5000/nginx")
    assert result.returncode == 0, result.stderr
    base = next(c for c in json.loads(output.read_text())["components"] if c["type"] == "container")
    assert base["name"] == "localhost:5000/nginx" and "version" not in base


def test_a_base_pinned_by_digest_keeps_its_name_and_tag_and_gives_the_digest_as_its_hash(tmp_path, files_sbom):
    (tmp_path / "a").write_text("a")
    digest = "0123456789abcdef" * 4
    result, output = files_sbom(tmp_path, tmp_path / "a", base=f"docker.io/library/nginx:1.30.2-alpine@sha256:{digest}")
    assert result.returncode == 0, result.stderr
    text = output.read_text()
    base = next(c for c in json.loads(text)["components"] if c["type"] == "container")
    assert (base["name"], base["version"], base["hashes"]) == (
        "docker.io/library/nginx", "1.30.2-alpine", [{"alg": "SHA-256", "content": digest}])
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None


@pytest.mark.parametrize("bad", ['quote"d', "back\\slash", "new\nline", "spa ce"])
def test_a_name_that_would_need_escaping_is_refused(tmp_path, bad, files_sbom):
    path = tmp_path / bad
    path.write_text("x")
    result, output = files_sbom(tmp_path, path)
    assert result.returncode != 0 and "refusing" in result.stderr
    assert not output.exists()


def test_the_containers_check_refuses_an_sbom_that_misses_a_file_or_is_invalid():
    valid = {
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": {"component": {"type": "container", "bom-ref": "image:hello-nginx@0.2.0", "name": "hello-nginx"}},
        "components": [
            {"type": "container", "bom-ref": "base:nginx", "name": "nginx"},
            {"type": "file", "bom-ref": "file:/etc/nginx/pod/nginx.conf", "name": "/etc/nginx/pod/nginx.conf",
             "hashes": [{"alg": "SHA-256", "content": "0" * 64}]},
            {"type": "file", "bom-ref": "file:/etc/nginx/html/index.html", "name": "/etc/nginx/html/index.html",
             "hashes": [{"alg": "SHA-256", "content": "0" * 64}]},
        ],
    }
    assert "valid CycloneDX 1.5" in check("hello-nginx", json.dumps(valid))
    missing = {**valid, "components": valid["components"][:2]}
    with pytest.raises(AssertionError, match="index.html"):
        check("hello-nginx", json.dumps(missing))
    invalid = {**valid, "components": [{**valid["components"][0], "type": "bogus"}, *valid["components"][1:]]}
    with pytest.raises(AssertionError, match="not valid"):
        check("hello-nginx", json.dumps(invalid))
