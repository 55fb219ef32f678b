#!/usr/bin/env bash
# Writes deploy/overlays/released/kustomization.yaml for one release: the minikube overlay with the
# four app images named by where they were pushed and by digest. The release workflow
# (.github/workflows/release.yml) runs it once the images are pushed and signed:
#
#   scripts/release-overlay.sh PREFIX VERSION hello-nginx=DIGEST hello-service=DIGEST \
#       world-service=DIGEST hello-tools=DIGEST
#
# PREFIX is the registry and namespace the images were pushed under (the workflow passes its
# registry and the repository's owner, lower-cased), VERSION the release without its `v` (0.2.0),
# and each DIGEST the sha256:... the registry answered for that image's push (for a multi-platform
# image, its index). Nothing else is changed; the file says which release it names.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGES=(hello-tools hello-nginx hello-service world-service)
overlay=deploy/overlays/released/kustomization.yaml

fail() { printf 'release-overlay: %s\n' "$*" >&2; exit 2; }

[ $# -eq $((2 + ${#IMAGES[@]})) ] \
  || fail "usage: $0 PREFIX VERSION ${IMAGES[*]/%/=DIGEST} (got $# arguments)"
prefix=$1 version=$2
shift 2
# A registry host (with an optional port), then one or more lower-case path components.
[[ $prefix =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$ ]] \
  || fail "PREFIX '$prefix' is not a registry and namespace in lower case (registry.example/owner)"
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] \
  || fail "VERSION '$version' is not a version like 0.2.0 (without the tag's v)"

declare -A digests=()
for pair in "$@"; do
  name=${pair%%=*} digest=${pair#*=}
  [[ " ${IMAGES[*]} " == *" $name "* && $pair == *=* ]] || fail "'$pair' is not one of ${IMAGES[*]/%/=DIGEST}"
  [ -z "${digests[$name]:-}" ] || fail "$name is given twice"
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || fail "$name: '$digest' is not a digest (sha256: and 64 hex digits)"
  digests[$name]=$digest
done
for name in "${IMAGES[@]}"; do
  [ -n "${digests[$name]:-}" ] || fail "no digest for $name"
done

written=$(mktemp "$overlay.XXXXXX")
trap 'rm -f "$written"' EXIT
{
  cat <<EOF
# Released images of Scalable Hello World $version (docs/images.md, "Released images"): the
# minikube overlay (one node, an Ingress, 2 replicas) with hello-nginx, hello-service,
# world-service and hello-tools pulled by digest from $prefix.
# Written by scripts/release-overlay.sh in the release workflow (.github/workflows/release.yml)
# once the images were pushed and signed.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: scalable-hello
resources:
  - ../minikube
images:
EOF
  for name in "${IMAGES[@]}"; do
    printf '  - name: %s\n    newName: %s/%s\n    digest: %s\n' "$name" "$prefix" "$name" "${digests[$name]}"
  done
} >"$written"
chmod 0644 "$written"
mv "$written" "$overlay"
trap - EXIT
printf 'release-overlay: %s names the %s images of %s by digest\n' "$overlay" "$version" "$prefix"
