#!/bin/sh
# Writes the CycloneDX SBOM of an image that adds files to a stock base (hello-nginx, hello-tools),
# in the image's own build, where the facts are:
#
#   files-sbom.sh NAME VERSION BASE OUTPUT [--debian-packages] PATH...
#
# NAME and VERSION: the image; BASE: the base image reference it was built FROM (a component of
# type container: a scanner of that image, or the release pipeline, lists its own packages; an
# SBOM made here of a local stand-in would describe the wrong image); PATH...: the files (or
# directories) the image adds, each hashed. --debian-packages also lists every package dpkg has
# installed (the hello-tools image installs curl and openssl on Debian). POSIX sh: it runs in
# nginx's Alpine image (busybox) and in Debian.
set -eu

fail() { printf 'files-sbom: %s\n' "$*" >&2; exit 1; }
[ $# -ge 5 ] || fail "usage: files-sbom.sh NAME VERSION BASE OUTPUT [--debian-packages] PATH..."
name=$1 version=$2 base=$3 output=$4
shift 4
debian=""
if [ "$1" = "--debian-packages" ]; then debian=1; shift; fi

# Every string goes into JSON as it is: refuse what would need escaping (called directly, never
# inside $(...), so that a refusal ends the script).
safe() {
  for value in "$@"; do
    case $value in
      "" | *[!A-Za-z0-9._+~:/@%=-]*) fail "refusing '$value': only letters, digits and ._+~:/@%=- are written" ;;
    esac
  done
}
safe "$name" "$version" "$base"

# BASE: registry/path/name:tag@sha256:digest -> its name, tag and digest (each part optional; a
# port's colon is followed by a slash).
base_image=${base%%@*} base_digest=""
case $base in *@sha256:*) base_digest=${base#*@sha256:} ;; esac
base_tag=${base_image##*:}
case $base_tag in */* | "$base_image") base_name=$base_image base_tag="" ;; *) base_name=${base_image%:*} ;; esac
base_hashes=""
if [ -n "$base_digest" ]; then
  case $base_digest in *[!0-9a-f]*) fail "refusing the digest of '$base': not lowercase hex" ;; esac
  [ ${#base_digest} -eq 64 ] || fail "refusing the digest of '$base': not 64 hex digits"
  base_hashes=", \"hashes\": [{\"alg\": \"SHA-256\", \"content\": \"$base_digest\"}]"
fi

image_ref="image:$name@$version"
base_ref="base:$base"
components=""
depends="\"$base_ref\""
add() { components="${components:+$components,
}    $1"; }

add "{\"type\": \"container\", \"bom-ref\": \"$base_ref\", \"name\": \"$base_name\"${base_tag:+, \"version\": \"$base_tag\"}$base_hashes, \"description\": \"the base image: scan it for its own packages\"}"

file_list=$(mktemp)
trap 'rm -f "$file_list"' EXIT
for path in "$@"; do
  [ -e "$path" ] || fail "$path does not exist"
  find "$path" -type f >>"$file_list"
done
while IFS= read -r file; do
  safe "$file"
  [ -f "$file" ] || fail "refusing '$file': not a file (a name holding a newline?)"
  hash=$(sha256sum "$file")
  hash=${hash%% *}
  add "{\"type\": \"file\", \"bom-ref\": \"file:$file\", \"name\": \"$file\", \"hashes\": [{\"alg\": \"SHA-256\", \"content\": \"$hash\"}]}"
done <<EOF
$(sort -u "$file_list")
EOF

if [ -n "$debian" ]; then
  distribution="debian-$(cat /etc/debian_version)"
  safe "$distribution"
  # Installed packages only: a package removed but for its configuration files is not there.
  packages=$(dpkg-query --show --showformat '${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n' \
    | sed -n 's/^ii *\t//p') || fail "dpkg-query failed"
  tab=$(printf '\t')
  while IFS=$tab read -r package package_version architecture; do
    safe "$package" "$package_version" "$architecture"
    encoded=$(printf '%s' "$package_version" | sed 's/%/%25/g; s/+/%2B/g; s/:/%3A/g')
    purl="pkg:deb/debian/$package@$encoded?arch=$architecture&distro=$distribution"
    add "{\"type\": \"library\", \"bom-ref\": \"$purl\", \"name\": \"$package\", \"version\": \"$package_version\", \"purl\": \"$purl\"}"
    depends="$depends, \"$purl\""
  done <<EOF
$packages
EOF
fi

mkdir -p "$(dirname "$output")"
cat >"$output" <<EOF
{
  "bomFormat": "CycloneDX",
  "specVersion": "1.5",
  "version": 1,
  "metadata": {
    "tools": {"components": [{"type": "application", "name": "files-sbom.sh"}]},
    "component": {"type": "container", "bom-ref": "$image_ref", "name": "$name", "version": "$version"}
  },
  "components": [
    $components
  ],
  "dependencies": [
    {"ref": "$image_ref", "dependsOn": [$depends]}
  ]
}
EOF
printf 'files-sbom: %s %s -> %s\n' "$name" "$version" "$output"
