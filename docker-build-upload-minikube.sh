#!/usr/bin/env bash
# Builds the app's images (hello-nginx, hello-service, world-service, and hello-tools for the Job
# that makes the Secrets) and makes them available to minikube.
#
#   ./docker-build-upload-minikube.sh               single node: build, then `minikube image load`
#   ./docker-build-upload-minikube.sh --registry    multi-node: build, then push to the registry
#                                                   addon through localhost:5000 (port-forward)
# Options:
#   --registry-port N   host port for the registry port-forward (default 5000; on macOS, AirPlay
#                       takes 5000: use e.g. 5001)
#   --profile NAME      minikube profile (default: minikube's current one)
#   -h, --help          this help
# Safe to run twice: builds are cached, an existing port-forward or enabled addon is reused.
# Each image's CycloneDX SBOM (made in its build, kept in it at /usr/share/sbom/) is written out to
# target/sbom/ (or $SBOM_DIR).
# Then: kubectl apply -k deploy/overlays/minikube     (deploy/overlays/multinode after --registry)
set -euo pipefail

cd "$(dirname "$0")"

mode=load
registry_port=5000
profile_args=()
# image name:Dockerfile, all built from the repository root.
images=(hello-nginx:deploy/nginx/Dockerfile hello-service:Dockerfile.hello world-service:Dockerfile.world
  hello-tools:deploy/tools/Dockerfile)

sbom_dir=${SBOM_DIR:-target/sbom}
say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

# write_sbom IMAGE NAME: copies the SBOM the image carries out of it, into $sbom_dir.
write_sbom() {
  local container
  mkdir -p "$sbom_dir"
  container=$(docker create "$1") || fail "docker create $1 failed (above)"
  docker cp "$container:/usr/share/sbom/$2.cdx.json" "$sbom_dir/$2.cdx.json" \
    || { docker rm "$container" >/dev/null; fail "$1 carries no SBOM at /usr/share/sbom/$2.cdx.json"; }
  docker rm "$container" >/dev/null
}
usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --registry) mode=registry ;;
    --registry-port) [ $# -ge 2 ] || fail "--registry-port needs a port number"; registry_port=$2; shift ;;
    --profile) [ $# -ge 2 ] || fail "--profile needs a minikube profile name"; profile_args=(-p "$2"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; fail "unknown option: $1" ;;
  esac
  shift
done
[[ "$registry_port" =~ ^[0-9]+$ ]] || fail "--registry-port must be a number, not '$registry_port'"

say "Checking prerequisites"
command -v docker >/dev/null || fail "docker is missing: install Docker (https://docs.docker.com/get-docker/)"
command -v minikube >/dev/null || fail "minikube is missing: install it (https://minikube.sigs.k8s.io/docs/start/)"
docker info >/dev/null 2>&1 || fail "docker is not running: start Docker, then run this again"
minikube "${profile_args[@]}" status --format '{{.Host}}' 2>/dev/null | grep -q Running \
  || fail "minikube is not running: start it with 'minikube start' (multi-node: 'minikube start --nodes 3'), then run this again"

if [ "$mode" = load ]; then
  tag=local
  for entry in "${images[@]}"; do
    name=${entry%%:*} dockerfile=${entry#*:}
    say "Building $name:$tag from $dockerfile"
    docker build -f "$dockerfile" -t "$name:$tag" . || fail "docker build of $name failed (above)"
    write_sbom "$name:$tag" "$name"
    say "Loading $name:$tag into minikube"
    minikube "${profile_args[@]}" image load "$name:$tag" || fail "minikube image load of $name failed (above)"
  done
  say "Done: hello-nginx, hello-service, world-service and hello-tools (tag local) are in minikube; their SBOMs in $sbom_dir. Deploy: kubectl apply -k deploy/overlays/minikube (or: skaffold run)"
  exit 0
fi

# Registry mode: the registry addon runs in kube-system; its registry-proxy makes it reachable as
# localhost:5000 on every node. From this machine it is reached through a port-forward.
command -v kubectl >/dev/null || fail "kubectl is missing: install it, or use 'minikube kubectl --' (https://kubernetes.io/docs/tasks/tools/)"
command -v curl >/dev/null || fail "curl is missing: install it"
if ! minikube "${profile_args[@]}" addons list 2>/dev/null | grep -E '^\| *registry *\|' | grep -q enabled; then
  say "Enabling the registry addon"
  minikube "${profile_args[@]}" addons enable registry || fail "could not enable the registry addon (above)"
fi

registry="localhost:$registry_port"
forward_pid=""
cleanup() {
  if [ -n "$forward_pid" ]; then
    kill "$forward_pid" 2>/dev/null || true
    wait "$forward_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
if curl -fsS --max-time 2 "http://$registry/v2/" >/dev/null 2>&1; then
  say "A registry already answers on $registry: using it"
else
  if (exec 3<>"/dev/tcp/127.0.0.1/$registry_port") 2>/dev/null; then
    fail "port $registry_port is taken by something that is not a registry (on macOS: AirPlay Receiver). Use --registry-port 5001"
  fi
  say "Forwarding $registry to the registry addon (kubectl port-forward)"
  kubectl port-forward --namespace kube-system service/registry "$registry_port:80" >/dev/null 2>&1 &
  forward_pid=$!
  for _ in $(seq 1 50); do
    curl -fsS --max-time 2 "http://$registry/v2/" >/dev/null 2>&1 && break
    kill -0 "$forward_pid" 2>/dev/null || fail "kubectl port-forward to the registry addon stopped: is the addon running? (kubectl -n kube-system get pods)"
    sleep 0.2
  done
  curl -fsS --max-time 2 "http://$registry/v2/" >/dev/null 2>&1 || fail "the registry did not answer on $registry within 10 s"
fi

for entry in "${images[@]}"; do
  name=${entry%%:*} dockerfile=${entry#*:}
  image="$registry/$name:dev"
  say "Building $image from $dockerfile"
  docker build -f "$dockerfile" -t "$image" . || fail "docker build of $name failed (above)"
  write_sbom "$image" "$name"
  say "Pushing $image"
  docker push "$image" || fail "docker push of $image failed (above)"
done
say "Done: images pushed to the registry addon (nodes pull localhost:5000/hello-nginx:dev, hello-service:dev, world-service:dev, hello-tools:dev); their SBOMs in $sbom_dir. Deploy: kubectl apply -k deploy/overlays/multinode"
