#!/usr/bin/env bash
# Container tests with podman (no Docker engine or Kubernetes on the test machines):
#  1. builds the four images from the repo's Dockerfiles (hello-nginx, hello-service,
#     world-service, hello-tools), prints their sizes and checks that they run as non-root users;
#  2. runs the rendered manifests for real (rendered_pod.py): the hello-secrets Job against a
#     stand-in Kubernetes API, then the app Deployment's pod spec exactly as rendered, as one pod,
#     with its probes, hooks, the smoke test and a graceful stop.
# Base images that cannot be pulled here are made once as stand-ins under their official names
# (docker.io/library/debian:bookworm-slim from debootstrap, docker.io/library/rust:1-slim-bookworm
# from debootstrap plus this machine's Rust toolchain, docker.io/library/nginx:1.27-alpine from
# Debian's nginx), so the Dockerfiles build unchanged.
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

if ! podman image exists docker.io/library/debian:bookworm-slim; then
  say "Making a stand-in docker.io/library/debian:bookworm-slim (debootstrap, about 30 s)"
  rootfs "$work/debian"
  tar -C "$work/debian" -c . | podman import --quiet --change 'CMD ["bash"]' - docker.io/library/debian:bookworm-slim >/dev/null
  rm -rf "$work/debian"
fi

if ! podman image exists docker.io/library/rust:1-slim-bookworm; then
  say "Making a stand-in docker.io/library/rust:1-slim-bookworm (debootstrap + this machine's toolchain)"
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
    - docker.io/library/rust:1-slim-bookworm >/dev/null
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
  podman build --quiet -f "$context/Containerfile" -t "$tag" "$context" >"$work/standin-$name.log" 2>&1 \
    || { tail -20 "$work/standin-$name.log"; fail "building the $name stand-in failed"; }
}
standin nginx docker.io/library/nginx:1.27-alpine
standin nx localhost/hello-test/nx:standin

# The build context is what .dockerignore lets in; every build copies it. Build output or a fuzz
# corpus let in by mistake costs gigabytes in each image build, so it is measured first, by podman.
context_limit_mb=${CONTEXT_LIMIT_MB:-32}
say "Measuring the build context that .dockerignore lets in (limit ${context_limit_mb} MB)"
printf 'FROM docker.io/library/debian:bookworm-slim\nCOPY . /context/\n' >"$work/Containerfile.context"
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

# image name:Dockerfile, as docker-build-upload-minikube.sh builds them.
images=(hello-nginx:deploy/nginx/Dockerfile hello-service:Dockerfile.hello world-service:Dockerfile.world
  hello-tools:deploy/tools/Dockerfile)
for entry in "${images[@]}"; do
  name=${entry%%:*} dockerfile=${entry#*:}
  say "Building $name from $dockerfile"
  podman build --layers -f "$dockerfile" -t "localhost/$name:local" . >"$work/build-$name.log" 2>&1 \
    || { tail -40 "$work/build-$name.log"; fail "podman build of $dockerfile failed"; }
done

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

"$deploy_python" -m tests.containers.rendered_pod minikube public --tag local || fail "the rendered pod (above)"
say "Container tests passed: four images build and run as non-root; the rendered Job and pod run as written, probes, smoke test and graceful stop included"
