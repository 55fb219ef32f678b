#!/usr/bin/env bash
# Container tests with podman (no Docker engine or Kubernetes on the test machines):
#  1. builds the four images from the repo's Dockerfiles (hello-nginx, hello-service,
#     world-service, hello-tools), prints their sizes and checks that they run as non-root users;
#     takes the Rust binaries out and audits the crates they embed (cargo audit bin), and checks
#     the SBOM each image carries against CycloneDX 1.5;
#  2. runs the rendered manifests for real (rendered_pod.py): the hello-secrets Job against a
#     stand-in Kubernetes API, then the app Deployment's pod spec exactly as rendered, as one pod,
#     with its probes, hooks, the smoke test and a graceful stop.
# Base images cannot be pulled here: stand-ins are made once under localhost/hello-test/ names
# (Debian from debootstrap; Rust from debootstrap plus this machine's toolchain, the version
# rust-toolchain.toml names; nginx from Debian's nginx) and handed to the Dockerfiles through the
# same build arguments (RUST_IMAGE, NGINX_IMAGE, DEBIAN_IMAGE) whose defaults name the exact
# official releases.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
export CONTAINERS_CONF="$root/deploy/podman/containers.conf"
deploy_python="${DEPLOY_PYTHON:-$root/.venv-deploy/bin/python}"

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

for tool in podman debootstrap kubectl curl openssl; do
  command -v "$tool" >/dev/null || fail "$tool is missing (Debian: apt-get install -y podman runc debootstrap curl openssl)"
done
[ "$(id -u)" -eq 0 ] || fail "debootstrap and podman import need root here: run as root"
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
ca_bundle=/etc/ssl/certs/ca-certificates.crt

work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

rootfs() { # rootfs DIR [extra packages]
  [ -n "$mirror" ] || fail "no Debian mirror in /etc/apt/sources.list.d/debian.sources"
  local dir=$1 include=${2:-}
  debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$dir" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; fail "debootstrap failed"; }
  # Registries are reached through this machine's TLS setup: give the image the same CA bundle.
  [ -f "$ca_bundle" ] && install -D -m 0644 "$ca_bundle" "$dir$ca_bundle"
  rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
}

debian_standin=localhost/hello-test/debian:standin
rust_standin=localhost/hello-test/rust:standin
nginx_standin=localhost/hello-test/nginx:standin

if ! podman image exists "$debian_standin"; then
  say "Making the stand-in $debian_standin for Debian (debootstrap, about 30 s)"
  rootfs "$work/debian"
  tar -C "$work/debian" -c . | podman import --quiet --change 'CMD ["bash"]' - "$debian_standin" >/dev/null
  rm -rf "$work/debian"
fi

if ! podman image exists "$rust_standin"; then
  say "Making the stand-in $rust_standin for Rust (debootstrap + this machine's toolchain)"
  rootfs "$work/rust" gcc,libc6-dev,ca-certificates
  [ -f "$ca_bundle" ] && install -D -m 0644 "$ca_bundle" "$work/rust$ca_bundle"
  sysroot=$(readlink -f "$(rustc --print sysroot)")
  mkdir -p "$work/rust/usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu" "$work/rust/usr/local/cargo/bin"
  tar -C "$sysroot" --exclude=share/doc -c . | tar -C "$work/rust/usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu" -x
  printf 'version = "12"\ndefault_toolchain = "stable-x86_64-unknown-linux-gnu"\nprofile = "minimal"\n' \
    > "$work/rust/usr/local/rustup/settings.toml"
  cp "$(command -v rustup)" "$work/rust/usr/local/cargo/bin/rustup"
  for proxy in cargo rustc rustdoc; do ln -s rustup "$work/rust/usr/local/cargo/bin/$proxy"; done
  tar -C "$work/rust" -c . | podman import --quiet \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$rust_standin" >/dev/null
  rm -rf "$work/rust"
fi

# standin NAME TAG: builds tests/containers/NAME.Containerfile as TAG, once.
standin() {
  local name=$1 tag=$2 context="$work/context-$1"
  podman image exists "$tag" && return 0
  say "Building the test stand-in $tag ($name.Containerfile)"
  mkdir -p "$context"
  cp "tests/containers/$name.Containerfile" "$context/Containerfile"
  cp "$ca_bundle" "$context/host-ca.crt"
  podman build --quiet --build-arg DEBIAN_IMAGE="$debian_standin" -f "$context/Containerfile" -t "$tag" "$context" >"$work/standin-$name.log" 2>&1 \
    || { tail -20 "$work/standin-$name.log"; fail "building the $name stand-in failed"; }
}
standin nginx "$nginx_standin"
standin nx localhost/hello-test/nx:standin

# The build context is what .dockerignore lets in; every build copies it. Build output or a fuzz
# corpus let in by mistake costs gigabytes in each image build, so it is measured first, by podman.
context_limit_mb=${CONTEXT_LIMIT_MB:-32}
say "Measuring the build context that .dockerignore lets in (limit ${context_limit_mb} MB)"
printf 'FROM %s\nCOPY . /context/\n' "$debian_standin" >"$work/Containerfile.context"
podman build --quiet --layers=false -f "$work/Containerfile.context" -t localhost/hello-test/context:probe . \
  >"$work/build-context.log" 2>&1 || { tail -20 "$work/build-context.log"; fail "copying the build context failed"; }
context_kb=$(podman run --rm --network none localhost/hello-test/context:probe du -sk /context | cut -f1)
largest=$(podman run --rm --network none localhost/hello-test/context:probe \
  sh -c 'cd /context && du -sk crates/*/* frontend deploy 2>/dev/null | sort -rn | head -5')
podman rmi --force localhost/hello-test/context:probe >/dev/null
printf '  build context: %s KB\n' "$context_kb"
if [ "$context_kb" -gt $((context_limit_mb * 1024)) ]; then
  printf '  largest parts (KB):\n'
  printf '%s\n' "$largest" | sed 's/^/    /'
  fail "the build context is ${context_kb} KB: exclude build output and test material in .dockerignore"
fi

# image name:Dockerfile, as docker-build-upload-minikube.sh builds them, and the stand-in each one's
# base argument takes.
images=(hello-nginx:deploy/nginx/Dockerfile hello-service:Dockerfile.hello world-service:Dockerfile.world
  hello-tools:deploy/tools/Dockerfile)
base_argument() {
  case $1 in
    hello-nginx) echo "NGINX_IMAGE=$nginx_standin" ;;
    hello-service | world-service) echo "RUST_IMAGE=$rust_standin" ;;
    hello-tools) echo "DEBIAN_IMAGE=$debian_standin" ;;
  esac
}
for entry in "${images[@]}"; do
  name=${entry%%:*} dockerfile=${entry#*:}
  say "Building $name from $dockerfile (--build-arg $(base_argument "$name"))"
  podman build --layers --build-arg "$(base_argument "$name")" -f "$dockerfile" -t "localhost/$name:local" . >"$work/build-$name.log" 2>&1 \
    || { tail -40 "$work/build-$name.log"; fail "podman build of $dockerfile failed"; }
done

# Every change to the code leaves the previous builds behind (a Rust build stage holds about 2 GB),
# and a machine that runs this often fills its disk. What these Dockerfiles built and nothing uses
# any more (dangling: no tag, no image built on it) goes once it is a day old (CONTAINER_TESTS_
# PRUNE_AGE), found by its labels. CONTAINER_TESTS_PRUNE=all (CI's machines, which hold only this
# project's images) removes every dangling image that old.
prune_age=${CONTAINER_TESTS_PRUNE_AGE:-24h}
if [ "${CONTAINER_TESTS_PRUNE:-}" = all ]; then
  prune_labels=("")
else
  prune_labels=(scalable-hello.stage=build org.opencontainers.image.title=hello-nginx
    org.opencontainers.image.title=hello-service org.opencontainers.image.title=world-service
    org.opencontainers.image.title=hello-tools)
fi
pruned=0
for label in "${prune_labels[@]}"; do
  removed=$(podman image prune --force --filter "until=$prune_age" ${label:+--filter "label=$label"}) \
    || fail "podman image prune failed (above)"
  pruned=$((pruned + $(printf '%s' "$removed" | grep -c . || true)))
done
scope="labelled by these Dockerfiles"
[ "${CONTAINER_TESTS_PRUNE:-}" != all ] || scope="any (CONTAINER_TESTS_PRUNE=all)"
say "Removed $pruned stale images (dangling, older than $prune_age, $scope)"

say "Image sizes and users"
for entry in "${images[@]}"; do
  image="localhost/${entry%%:*}:local"
  size=$(podman image inspect --format '{{.Size}}' "$image")
  user=$(podman image inspect --format '{{.Config.User}}' "$image")
  printf '  %-14s %s  user %s\n' "${entry%%:*}" "$(awk -v bytes="$size" 'BEGIN { printf "%6.1f MB", bytes / 1000000 }')" "$user"
  uid=${user%%:*}
  if ! [[ "$uid" =~ ^[0-9]+$ ]] || [ "$uid" -eq 0 ]; then
    fail "$image must run as a numeric non-root user, not '$user'"
  fi
done

# copy_out IMAGE PATH DESTINATION: a file out of an image (a created, never started, container).
copy_out() {
  local container
  container=$(podman create "$1") || fail "podman create $1 failed"
  podman cp "$container:$2" "$3" || { podman rm "$container" >/dev/null; fail "$1 holds no $2"; }
  podman rm "$container" >/dev/null
}

# What is inside: the Rust binaries carry their crate list (cargo-auditable), which scanners and
# `cargo audit bin` read. Checked on the binaries taken out of the built images, offline, against
# the database the deny stage uses; and the check must be able to fail: a binary built the same
# way from tests/advisories/known-vulnerable (time 0.1.43, RUSTSEC-2020-0071) must be refused.
[ -n "${ADVISORY_DB:-}" ] || fail "ADVISORY_DB is not set: run this through ./scripts/test.sh containers, which prepares the RustSec database"
say "What the Rust binaries are built from (cargo-auditable's embedded list; cargo audit bin, database $ADVISORY_DB)"
mkdir -p "$work/binaries"
for name in hello-service world-service; do
  copy_out "localhost/$name:local" "/usr/local/bin/$name" "$work/binaries/$name"
done
"$deploy_python" -m tests.containers.crates_inside "$work/binaries/hello-service" "$work/binaries/world-service" \
  || fail "an image's binary carries no crate list (above)"
# As strict as the deny stage (cargo-deny refuses unmaintained and unsound crates too), and with
# no audit.toml of its own that could ignore an advisory unseen.
for config in .cargo/audit.toml "${CARGO_HOME:-$HOME/.cargo}/audit.toml"; do
  [ ! -e "$config" ] || fail "$config exists: cargo audit would take its ignore list; ignore advisories in deny.toml, with a reason"
done
audit=(cargo audit --db "$ADVISORY_DB" --no-fetch --deny unsound --deny unmaintained)
"${audit[@]}" bin "$work/binaries/hello-service" "$work/binaries/world-service" \
  >"$work/audit.log" 2>&1 || { cat "$work/audit.log"; fail "cargo audit bin found advisories in an image's binary (above): update the crate"; }
grep -E 'Loaded|Found' "$work/audit.log" | sed 's/^ */  /'
cargo auditable build --quiet --release --locked --manifest-path tests/advisories/known-vulnerable/Cargo.toml \
  --target-dir "$root/target/advisories" || fail "cargo auditable could not build tests/advisories/known-vulnerable"
vulnerable="$root/target/advisories/release/known-vulnerable"
if "${audit[@]}" bin "$vulnerable" >"$work/vulnerable.log" 2>&1; then
  cat "$work/vulnerable.log"; fail "cargo audit bin passed a binary built with time 0.1.43: it checks nothing"
fi
grep -q "RUSTSEC-2020-0071" "$work/vulnerable.log" || { cat "$work/vulnerable.log"; fail "cargo audit bin refused the known-vulnerable binary, but not for RUSTSEC-2020-0071"; }
echo "  cargo audit bin refuses a binary built with time 0.1.43 (RUSTSEC-2020-0071), as it must"

say "The SBOM each image carries (/usr/share/sbom/NAME.cdx.json, made in its build), against CycloneDX 1.5"
mkdir -p "$work/sbom"
for entry in "${images[@]}"; do
  name=${entry%%:*}
  copy_out "localhost/$name:local" "/usr/share/sbom/$name.cdx.json" "$work/sbom/$name.cdx.json"
done
"$deploy_python" -m tests.containers.sboms "$work/sbom" || fail "an image's SBOM (above)"

"$deploy_python" -m tests.containers.rendered_pod minikube public --tag local || fail "the rendered pod (above)"
say "Container tests passed: four images build and run as non-root, their Rust binaries list their crates and carry no known advisory, each carries a valid SBOM; the rendered Job and pod run as written, probes, smoke test and graceful stop included"
