#!/usr/bin/env bash
# Checks the images deploy/overlays/released names before you deploy them:
#
#   scripts/verify-release.sh PREFIX REPOSITORY_URL TAG
#   e.g. scripts/verify-release.sh ghcr.io/owner https://github.com/owner/repository v0.2.0
#
# The rendered overlay must name each of the four app images exactly once, as PREFIX/NAME by
# digest (a tag can be moved; an image swapped for a tag or another registry is refused), and
# each must carry a cosign signature whose certificate names this repository's release workflow
# at exactly TAG (an older release's signature does not do). Needs kubectl and cosign 2 or later.
set -euo pipefail
cd "$(dirname "$0")/.."

APPS=(hello-nginx hello-service world-service hello-tools)
ISSUER=https://token.actions.githubusercontent.com

fail() { printf 'verify-release: FAILED: %s\n' "$*" >&2; exit 1; }
[ $# -eq 3 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
prefix=${1%/} repository=${2%/} tag=$3
[[ $tag =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || fail "TAG '$tag' is not a release tag like v0.2.0"
for tool in kubectl cosign; do
  command -v "$tool" >/dev/null || fail "$tool is missing: install it"
done

rendered=$(kubectl kustomize deploy/overlays/released) || fail "deploy/overlays/released does not render (above)"
images=$(printf '%s\n' "$rendered" | sed -n 's/^ *\(- \)\{0,1\}image: *//p' | tr -d '"'"'" | sort -u)
identity="$repository/.github/workflows/release.yml@refs/tags/$tag"
for app in "${APPS[@]}"; do
  # Every image whose name ends in /APP or is APP, whatever its registry, tag or digest.
  named=$(printf '%s\n' "$images" | grep -E "(^|/)$app([:@]|$)" || true)
  [ -n "$named" ] || fail "the overlay names no $app image"
  [ "$(printf '%s\n' "$named" | wc -l)" -eq 1 ] || fail "the overlay names $app more than once: $(echo "$named" | tr '\n' ' ')"
  [[ $named =~ ^"$prefix/$app"@sha256:[0-9a-f]{64}$ ]] \
    || fail "$app is '$named', not $prefix/$app by digest: deploy only what the release workflow wrote"
  printf '==> %s: cosign verify for %s\n' "$named" "$identity"
  cosign verify "$named" --certificate-identity "$identity" --certificate-oidc-issuer "$ISSUER" >/dev/null \
    || fail "$named carries no signature of $identity (above)"
done
printf 'verify-release: OK: the four app images are %s/... by digest, each signed by the release workflow at %s\n' "$prefix" "$tag"
