#!/usr/bin/env bash
# Container tests with podman (no Docker engine or Kubernetes on the test machines):
#  1. builds hello-service and world-service from the real Dockerfiles, prints their sizes and
#     checks that they run as a non-root user;
#  2. runs them as a pod (shared localhost) with Nginx, configured with the files the Kubernetes
#     manifests mount and the env ConfigMaps they set, and MongoDB's wire protocol (nx-27017) as
#     the store; a POST then a GET through Nginx on 127.0.0.1 must answer as the contract says.
# Base images that cannot be pulled here are made once as stand-ins under their official names
# (docker.io/library/debian:bookworm-slim from debootstrap, docker.io/library/rust:1-slim-bookworm
# from debootstrap plus this machine's Rust toolchain), so the Dockerfiles build unchanged.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
export CONTAINERS_CONF="$root/deploy/podman/containers.conf"
deploy_python="${DEPLOY_PYTHON:-$root/.venv-deploy/bin/python}"

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

for tool in podman debootstrap kubectl curl; do
  command -v "$tool" >/dev/null || fail "$tool is missing (Debian: apt-get install -y podman runc debootstrap curl)"
done
[ "$(id -u)" -eq 0 ] || fail "debootstrap and podman import need root here: run as root"
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
ca_bundle=/etc/ssl/certs/ca-certificates.crt

work=$(mktemp -d)
pod=""
cleanup() {
  if [ -n "$pod" ]; then podman pod rm --force --time 5 "$pod" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
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

for standin in nginx nx; do
  if ! podman image exists "localhost/hello-test/$standin:standin"; then
    say "Building the test stand-in localhost/hello-test/$standin:standin"
    context="$work/context-$standin"
    mkdir -p "$context"
    cp "tests/containers/$standin.Containerfile" "$context/Containerfile"
    cp "$ca_bundle" "$context/host-ca.crt"
    podman build --quiet -f "$context/Containerfile" -t "localhost/hello-test/$standin:standin" "$context" >"$work/standin-$standin.log" 2>&1 \
      || { tail -20 "$work/standin-$standin.log"; fail "building the $standin stand-in failed"; }
  fi
done

for service in hello world; do
  say "Building $service-service from Dockerfile.$service (release build inside the image: several minutes)"
  podman build --layers -f "Dockerfile.$service" -t "localhost/$service-service:local" . >"$work/build-$service.log" 2>&1 \
    || { tail -40 "$work/build-$service.log"; fail "podman build of Dockerfile.$service failed"; }
done

say "Image sizes and users"
for service in hello world; do
  image="localhost/$service-service:local"
  size=$(podman image inspect --format '{{.Size}}' "$image")
  user=$(podman image inspect --format '{{.Config.User}}' "$image")
  printf '  %-14s %s  user %s\n' "$service-service" "$(awk -v bytes="$size" 'BEGIN { printf "%6.1f MB", bytes / 1000000 }')" "$user"
  uid=${user%%:*}
  if ! [[ "$uid" =~ ^[0-9]+$ ]] || [ "$uid" -eq 0 ]; then
    fail "$image must run as a numeric non-root user, not '$user'"
  fi
done

say "Reading the env ConfigMaps the manifests set (deploy/overlays/minikube)"
kubectl kustomize deploy/overlays/minikube > "$work/rendered.yaml"
"$deploy_python" - "$work" <<'PY'
import sys, yaml
work = sys.argv[1]
for doc in yaml.safe_load_all(open(f"{work}/rendered.yaml")):
    if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"].split("-")[1:2] == ["env"]:
        name = doc["metadata"]["name"].split("-")[0]
        with open(f"{work}/{name}.env", "w") as env:
            for key, value in doc["data"].items():
                env.write(f"{key}={value}\n")
PY
if [ ! -s "$work/hello.env" ] || [ ! -s "$work/world.env" ]; then
  fail "the hello-env and world-env ConfigMaps were not found in the rendered manifests"
fi
mkdir -p "$work/secret" && printf 'container-test-token' > "$work/secret/api-token"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pod=hello-container-test-$$
say "Starting pod $pod: nginx + hello + world + nx-27017, published on 127.0.0.1:$port"
# The store is reached by the name the manifests use (mongodb-0.mongodb), mapped to the pod's own
# loopback: the runtime images are FROM scratch, so this checks that their glibc resolves names.
podman pod create --name "$pod" -p "127.0.0.1:$port:8080" --add-host mongodb-0.mongodb:127.0.0.1 >/dev/null
mounts=(-v "$root/deploy/base/config:/etc/config:ro" -v "$root/deploy/base/config-immutable:/etc/config-immutable:ro" -v "$work/secret:/etc/secret:ro")
podman run -d --pod "$pod" --name "$pod-mongodb" --read-only --tmpfs /tmp localhost/hello-test/nx:standin >/dev/null
for _ in $(seq 1 100); do podman exec "$pod-mongodb" python3 -c 'import socket; socket.create_connection(("127.0.0.1", 27017), 1)' 2>/dev/null && break; sleep 0.2; done
podman run -d --pod "$pod" --name "$pod-world" --read-only --cap-drop ALL --security-opt no-new-privileges \
  --env-file "$work/world.env" -e POD_NAME="$pod" -e WORLD_MONGODB_URI="mongodb://mongodb-0.mongodb:27017/?directConnection=true" \
  "${mounts[@]}" localhost/world-service:local >/dev/null
podman run -d --pod "$pod" --name "$pod-hello" --read-only --cap-drop ALL --security-opt no-new-privileges \
  --env-file "$work/hello.env" -e POD_NAME="$pod" "${mounts[@]}" localhost/hello-service:local >/dev/null
podman run -d --pod "$pod" --name "$pod-nginx" --read-only --cap-drop ALL --security-opt no-new-privileges --user 101 \
  -v "$root/deploy/nginx:/etc/nginx/pod:ro" -v "$root/frontend:/etc/nginx/html:ro" --tmpfs /etc/nginx/tmp:mode=1777 \
  localhost/hello-test/nginx:standin nginx -p /etc/nginx/ -c /etc/nginx/pod/nginx.conf -e stderr -g 'daemon off;' >/dev/null

url="http://127.0.0.1:$port"
ready=false
for _ in $(seq 1 150); do
  if curl -fsS --max-time 2 "$url/readyz" >/dev/null 2>&1; then ready=true; break; fi
  sleep 0.2
done
if ! $ready; then
  for container in mongodb world hello nginx; do echo "--- $container"; podman logs --tail 20 "$pod-$container" 2>&1; done
  fail "the pod did not become ready through nginx on $url"
fi

say "POST then GET through nginx"
post=$(curl -sS --max-time 5 -D "$work/post.headers" -X POST "$url/hello/bob" -H 'Content-Type: application/json' -d '{"from":"alice"}')
grep -q '^HTTP/1.1 201' "$work/post.headers" || fail "POST /hello/bob answered $(head -1 "$work/post.headers"): $post"
grep -qi "^x-pod-name: $pod" "$work/post.headers" || fail "the POST answer lacks X-Pod-Name: $pod"
echo "  POST /hello/bob -> 201 $post"
get=$(curl -sS --max-time 5 "$url/hello/bob")
echo "  GET  /hello/bob -> $get"
"$deploy_python" -c '
import json, sys
inbox = json.loads(sys.argv[1]); posted = json.loads(sys.argv[2])
assert inbox["name"] == "bob" and inbox["remaining"] == 0, inbox
assert [(h["id"], h["from"]) for h in inbox["hellos"]] == [(posted["id"], "alice")], inbox
' "$get" "$post" || fail "GET /hello/bob did not return the hello just posted"
again=$(curl -sS --max-time 5 "$url/hello/bob")
[ "$(echo "$again" | "$deploy_python" -c 'import json,sys; print(len(json.load(sys.stdin)["hellos"]))')" = 0 ] \
  || fail "the second GET should be empty: $again"
# Into a file first: with pipefail, `curl | grep -q` fails whenever grep stops reading early.
curl -fsS --max-time 5 -o "$work/page.html" "$url/" && grep -q "Scalable Hello World" "$work/page.html" \
  || fail "nginx did not serve the page"
info=$(curl -fsS --max-time 5 "$url/info")
echo "$info" | grep -q '"store":"mongodb"' || fail "world-service is not using the MongoDB backend: $info"

say "Processes run as non-root users"
for container in hello world nginx; do
  uid=$(podman exec "$pod-$container" sh -c 'id -u' 2>/dev/null || podman inspect --format '{{.Config.User}}' "$pod-$container")
  echo "  $container: uid $uid"
  [ "${uid%%:*}" != 0 ] || fail "$container runs as root"
done

say "The smoke image (what skaffold verify runs after a deploy) against the pod"
podman build --layers -f deploy/tools/Dockerfile -t localhost/hello-tools:local . >"$work/build-smoke.log" 2>&1 \
  || { tail -20 "$work/build-smoke.log"; fail "podman build of deploy/tools/Dockerfile failed"; }
smoke=$(podman run --rm --network host localhost/hello-tools:local /usr/local/bin/smoke.sh "$url" 2>&1) \
  || fail "the smoke image found the pod broken: $smoke"
echo "$smoke" | tail -1 | grep -q '^smoke: OK' || fail "the smoke image did not end with 'smoke: OK': $smoke"
echo "  $(echo "$smoke" | tail -1)"

say "Container tests passed: both images build, run as non-root, serve the contract as a pod, and the smoke image finds it working"
