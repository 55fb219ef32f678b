"""Every image the Dockerfiles build on is an exact release, named in one build argument.

Two builds of one commit should start from the same bases: each FROM takes its image from an ARG
whose default is an exact release (the tests pass their local stand-ins through the same ARG;
Renovate keeps the defaults current and pins their digests). Rust's version is the one
rust-toolchain.toml names; nginx's is on a stable line (even minor version). The images' source
label comes from a build argument (empty unless the publisher sets it), never a written address.
"""

import re
import tomllib

import pytest

from tests.support.manifests import ROOT

DOCKERFILES = [ROOT / "Dockerfile.hello", ROOT / "Dockerfile.world", ROOT / "deploy" / "nginx" / "Dockerfile",
               ROOT / "deploy" / "tools" / "Dockerfile"]

# image name -> what an exact tag of it looks like.
EXACT_TAGS = {
    "docker.io/library/rust": re.compile(r"^(?P<version>\d+\.\d+\.\d+)-slim-bookworm$"),
    "docker.io/library/nginx": re.compile(r"^(?P<version>\d+\.(?P<minor>\d+)\.\d+)-alpine$"),
    "docker.io/library/debian": re.compile(r"^(?P<version>\d+\.\d+)-slim$"),
}


def base_images(dockerfile_text: str) -> dict[str, str]:
    """FROM's build argument -> its default, for every FROM that is not `scratch` or a stage."""
    defaults = dict(re.findall(r"^ARG (\w+)=(\S*)$", dockerfile_text, re.MULTILINE))
    stages = set(re.findall(r"^FROM \S+ AS (\w+)$", dockerfile_text, re.MULTILINE))
    bases = {}
    for image in re.findall(r"^FROM (\S+)", dockerfile_text, re.MULTILINE):
        if image == "scratch" or image in stages:
            continue
        argument = re.fullmatch(r"\$\{(\w+)\}", image)
        if argument is None:
            raise AssertionError(f"FROM {image}: take the base from a build argument (ARG NAME=image:tag)")
        if argument[1] not in defaults:
            raise AssertionError(f"FROM {image}: its ARG has no default")
        bases[argument[1]] = defaults[argument[1]]
    return bases


def exact_release(reference: str) -> re.Match:
    """The tag's match if `reference` names an exact release of a known image (with or without the
    digest Renovate pins beside the tag); else AssertionError."""
    reference, _, digest = reference.partition("@")
    assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{reference}: '{digest}' is not a sha256 digest"
    name, _, tag = reference.rpartition(":")
    assert name in EXACT_TAGS, f"{reference}: not one of the bases this project knows ({', '.join(EXACT_TAGS)})"
    match = EXACT_TAGS[name].match(tag)
    assert match, f"{reference}: '{tag}' floats; name an exact release ({EXACT_TAGS[name].pattern})"
    return match


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_base_is_an_exact_release(dockerfile):
    bases = base_images(dockerfile.read_text())
    assert bases, f"{dockerfile}: no base image found"
    for argument, reference in bases.items():
        exact_release(reference)
        print(f"{dockerfile.relative_to(ROOT)}: {argument}={reference}")


def test_the_rust_image_is_the_toolchain_the_repository_names():
    channel = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    for dockerfile in (ROOT / "Dockerfile.hello", ROOT / "Dockerfile.world"):
        version = exact_release(base_images(dockerfile.read_text())["RUST_IMAGE"])["version"]
        assert version == channel, f"{dockerfile.name} builds with Rust {version}; rust-toolchain.toml says {channel}"


def test_nginx_is_on_a_stable_line():
    reference = base_images((ROOT / "deploy" / "nginx" / "Dockerfile").read_text())["NGINX_IMAGE"]
    assert int(exact_release(reference)["minor"]) % 2 == 0, f"{reference}: an odd minor version is nginx's mainline"


def test_tools_pinned_in_a_dockerfile_are_exact_versions():
    for dockerfile in DOCKERFILES:
        for name, value in re.findall(r"^ARG (\w+_VERSION)=(\S*)$", dockerfile.read_text(), re.MULTILINE):
            assert re.fullmatch(r"\d+\.\d+\.\d+", value), f"{dockerfile.name}: {name}={value} is not an exact version"


@pytest.mark.parametrize("floating", ["docker.io/library/rust:1-slim-bookworm", "docker.io/library/rust:1.95-slim-bookworm",
                                      "docker.io/library/nginx:1.27-alpine", "docker.io/library/nginx:stable-alpine",
                                      "docker.io/library/debian:bookworm-slim", "docker.io/library/debian:latest",
                                      "rust:1.95.0-slim-bookworm"])
def test_a_floating_or_unknown_base_is_refused(floating):
    with pytest.raises(AssertionError):
        exact_release(floating)


def test_a_digest_pinned_beside_the_tag_is_accepted():
    assert exact_release("docker.io/library/nginx:1.30.2-alpine@sha256:" + "a" * 64)["version"] == "1.30.2"
    with pytest.raises(AssertionError):
        exact_release("docker.io/library/nginx:1.30.2-alpine@sha256:short")


def test_the_images_version_is_the_workspace_version():
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    for dockerfile in DOCKERFILES:
        assert f"ARG VERSION={version}\n" in dockerfile.read_text(), f"{dockerfile.name}: ARG VERSION must be {version}, as Cargo.toml"


def test_cargo_auditable_is_the_same_version_in_the_images_and_the_suite():
    suite = (ROOT / "scripts" / "test.sh").read_text()
    for dockerfile in (ROOT / "Dockerfile.hello", ROOT / "Dockerfile.world"):
        version = re.search(r"^ARG CARGO_AUDITABLE_VERSION=(\S+)$", dockerfile.read_text(), re.MULTILINE)[1]
        assert f"cargo-auditable@{version}" in suite, f"{dockerfile.name} builds with cargo-auditable {version}; scripts/test.sh installs another"


def test_a_base_written_into_from_is_refused():
    with pytest.raises(AssertionError, match="build argument"):
        base_images("FROM docker.io/library/debian:12.14-slim\n")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_source_label_comes_from_a_build_argument(dockerfile):
    text = dockerfile.read_text()
    assert 'ARG SOURCE_URL=""' in text, f"{dockerfile.name}: ARG SOURCE_URL=\"\" (set by whoever publishes the image)"
    assert 'org.opencontainers.image.source="${SOURCE_URL}"' in text, f"{dockerfile.name}: the source label must be ${{SOURCE_URL}}"


def test_ci_runs_in_the_image_the_dockerfiles_build_with():
    rust_image = base_images((ROOT / "Dockerfile.hello").read_text())["RUST_IMAGE"]
    containers = re.findall(r"^\s+container: (\S+)$", (ROOT / ".github" / "workflows" / "ci.yml").read_text(), re.MULTILINE)
    assert containers and set(containers) == {rust_image}, f"ci.yml's jobs run in {set(containers)}, the Dockerfiles build with {rust_image}"
