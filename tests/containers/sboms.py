"""The SBOM each built image carries: valid CycloneDX 1.5, and saying what the image holds.

    python -m tests.containers.sboms DIRECTORY

DIRECTORY holds NAME.cdx.json, copied out of each image (/usr/share/sbom/). Each is validated
against the CycloneDX 1.5 JSON schema (cyclonedx-python-lib's strict validator), then checked
against what the image is known to hold: the Rust images their crates and the Debian packages of
their shared libraries; hello-nginx its config and page and its base; hello-tools its scripts
and the Debian packages it installs.
"""

import json
import sys
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

# image -> (files it must list, Debian packages it must list, crates it must list)
EXPECTED = {
    "hello-service": (["/usr/local/bin/hello-service", "/etc/ssl/certs/ca-certificates.crt"], ["libc6", "libgcc-s1"],
                      ["actix-web", "hello-common", "reqwest"]),
    "world-service": (["/usr/local/bin/world-service", "/etc/ssl/certs/ca-certificates.crt"], ["libc6", "libgcc-s1"],
                      ["actix-web", "hello-common", "mongodb", "redb"]),
    "hello-nginx": (["/etc/nginx/pod/nginx.conf", "/etc/nginx/html/index.html"], [], []),
    "hello-tools": (["/usr/local/bin/make-secrets.sh", "/usr/local/bin/load.sh", "/usr/local/bin/smoke.sh"],
                    ["curl", "openssl", "ca-certificates"], []),
}


def flattened(components: list[dict]) -> list[dict]:
    """Every component, nested ones too (a Debian package holds the files taken from it)."""
    found = []
    for component in components:
        found.append(component)
        found.extend(flattened(component.get("components", [])))
    return found


def check(name: str, text: str) -> str:
    """A line saying what the SBOM lists; raises AssertionError if it is invalid or misses a fact."""
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    assert error is None, f"{name}: not valid CycloneDX 1.5: {str(error).splitlines()[0]}"
    document = json.loads(text)
    assert document["metadata"]["component"]["name"] == name, f"{name}: the SBOM describes {document['metadata']['component']['name']}"
    components = flattened(document["components"])
    files = {c["name"] for c in components if c["type"] == "file"}
    debian = {c["name"] for c in components if c.get("purl", "").startswith("pkg:deb/")}
    crates = {c["name"] for c in components if c.get("purl", "").startswith("pkg:cargo/") or c["bom-ref"].startswith("crate:")}
    bases = [c for c in components if c["type"] == "container"]
    must_files, must_packages, must_crates = EXPECTED[name]
    for kind, wanted, listed in (("file", must_files, files), ("Debian package", must_packages, debian),
                                 ("crate", must_crates, crates)):
        missing = sorted(set(wanted) - listed)
        assert not missing, f"{name}: the SBOM lists no {kind} {', '.join(missing)}"
    assert all(c.get("hashes") for c in components if c["type"] == "file"), f"{name}: a file without its hash"
    if name in ("hello-nginx", "hello-tools"):
        assert len(bases) == 1, f"{name}: the SBOM must name its base image once"
    parts = [f"{len(crates)} crates"] if crates else []
    parts += [f"{len(debian)} Debian packages"] if debian else []
    parts += [f"{len(files)} files"]
    parts += [f"base {base['name']}:{base.get('version', '')}" for base in bases]
    return f"  {name}: valid CycloneDX 1.5; {', '.join(parts)}"


def main() -> None:
    directory = Path(sys.argv[1])
    for name in EXPECTED:
        path = directory / f"{name}.cdx.json"
        try:
            print(check(name, path.read_text()))
        except (AssertionError, OSError, ValueError, KeyError) as error:
            sys.exit(f"FAILED: {error}")


if __name__ == "__main__":
    main()
