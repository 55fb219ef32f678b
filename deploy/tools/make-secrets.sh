#!/usr/bin/env bash
# Creates the app's Secrets with random values, each only if it is absent: no credential value is
# ever in git, and nothing has to be done by hand. Runs in the cluster as the Job `hello-secrets`
# (deploy/base/secrets-job.yaml), whose ServiceAccount may only *create* Secrets in its namespace:
# it cannot read, change or delete one, so running it again never replaces a credential in use.
#
#   make-secrets.sh SECRET...      e.g. make-secrets.sh mongodb-root mongodb-app app-secret
#
# Secrets it knows (components add theirs to the Job's arguments):
#   mongodb-root     MongoDB's root user (username, password): used only to initialise MongoDB
#   mongodb-app      world-service's MongoDB user (username, password): readWrite on its database
#   app-secret       the demo Secret mounted into the app (api-token), shown by key in /info
#   mongodb-keyfile  the shared key of a MongoDB replica set's members (keyfile)
#   hello-tls        a self-signed certificate for the Ingress (tls.crt, tls.key; CN hello.local,
#                    or TLS_HOST)
#   grafana-admin    Grafana's admin user (admin-user, admin-password), for the monitoring component
#
# It talks to the Kubernetes API with the Pod's ServiceAccount token (curl, no kubectl). For
# tests, KUBERNETES_API_URL and SERVICEACCOUNT_DIR point it elsewhere. Values never reach its
# output or its command lines.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

[ $# -gt 0 ] || fail "name the Secrets to create, e.g. make-secrets.sh mongodb-root mongodb-app app-secret"
for tool in curl openssl base64; do
  command -v "$tool" >/dev/null || fail "$tool is missing from this image"
done

serviceaccount=${SERVICEACCOUNT_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}
if [ -z "${KUBERNETES_API_URL:-}" ]; then
  [ -n "${KUBERNETES_SERVICE_HOST:-}" ] || fail "not in a Kubernetes Pod (KUBERNETES_SERVICE_HOST is unset); set KUBERNETES_API_URL to run elsewhere"
  KUBERNETES_API_URL="https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT:-443}"
fi
for file in token namespace ca.crt; do
  [ -s "$serviceaccount/$file" ] || fail "$serviceaccount/$file is missing: the Job needs its ServiceAccount token mounted (automountServiceAccountToken: true)"
done
namespace=$(cat "$serviceaccount/namespace")
TLS_HOST=${TLS_HOST:-hello.local}

# Everything secret goes through files in a private directory, never through argv.
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'Authorization: Bearer %s\n' "$(cat "$serviceaccount/token")" > "$work/auth-header"

# 32 random bytes as 64 hex digits: URL-safe, so a password can sit in a connection string as is.
random_value() { openssl rand -hex 32 | tr -d '\n'; }
b64() { base64 -w0; }

# secret_body NAME TYPE KEY=FILE...: the Secret's JSON, with each value read from FILE.
secret_body() {
  local name=$1 type=$2 first=true pair
  shift 2
  printf '{"apiVersion":"v1","kind":"Secret","type":"%s","metadata":{"name":"%s","labels":{"app.kubernetes.io/part-of":"scalable-hello-world","app.kubernetes.io/managed-by":"hello-secrets-job"}},"data":{' "$type" "$name"
  for pair in "$@"; do
    $first || printf ','
    first=false
    printf '"%s":"%s"' "${pair%%=*}" "$(b64 < "${pair#*=}")"
  done
  printf '}}'
}

# secret_for NAME: writes the values of Secret NAME into $work/NAME/ and prints its body.
secret_for() {
  local name=$1 dir="$work/$1"
  mkdir -p "$dir"
  case "$name" in
    mongodb-root)
      printf 'root' > "$dir/username"; random_value > "$dir/password"
      secret_body "$name" Opaque "username=$dir/username" "password=$dir/password" ;;
    mongodb-app)
      printf 'world-service' > "$dir/username"; random_value > "$dir/password"
      secret_body "$name" Opaque "username=$dir/username" "password=$dir/password" ;;
    app-secret)
      random_value > "$dir/api-token"
      secret_body "$name" Opaque "api-token=$dir/api-token" ;;
    mongodb-keyfile)
      # What MongoDB asks for: 6 to 1024 base64 characters.
      openssl rand -base64 756 | tr -d '\n' > "$dir/keyfile"
      secret_body "$name" Opaque "keyfile=$dir/keyfile" ;;
    hello-tls)
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
        -subj "/CN=$TLS_HOST" -addext "subjectAltName=DNS:$TLS_HOST" \
        -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>"$work/openssl.log" \
        || { cat "$work/openssl.log" >&2; fail "openssl could not make the certificate for $TLS_HOST"; }
      secret_body "$name" kubernetes.io/tls "tls.crt=$dir/tls.crt" "tls.key=$dir/tls.key" ;;
    grafana-admin)
      printf 'admin' > "$dir/admin-user"; random_value > "$dir/admin-password"
      secret_body "$name" Opaque "admin-user=$dir/admin-user" "admin-password=$dir/admin-password" ;;
    *) fail "unknown Secret '$name' (known: mongodb-root mongodb-app app-secret mongodb-keyfile hello-tls grafana-admin)" ;;
  esac
}

created=0 kept=0
for name in "$@"; do
  secret_for "$name" > "$work/body.json"
  status=$(curl -sS --max-time 20 --retry 5 --retry-connrefused --retry-delay 2 \
    --cacert "$serviceaccount/ca.crt" -H @"$work/auth-header" -H 'Content-Type: application/json' \
    -X POST --data-binary @"$work/body.json" -o "$work/response.json" -w '%{http_code}' \
    "$KUBERNETES_API_URL/api/v1/namespaces/$namespace/secrets") \
    || fail "could not reach the Kubernetes API at $KUBERNETES_API_URL (is a NetworkPolicy blocking the Job?)"
  rm -f "$work/body.json"
  case "$status" in
    201) say "Secret $name: created with new random values"; created=$((created + 1)) ;;
    409) say "Secret $name: already there, kept as it is"; kept=$((kept + 1)) ;;
    403) fail "the API refused to create Secret $name (403): the Job's ServiceAccount needs the Role hello-secrets (create on secrets in $namespace)" ;;
    *)
      # Kubernetes' Status object names the reason; it never holds the request's data.
      reason=$(grep -o '"message": *"[^"]*"' "$work/response.json" | head -1 || true)
      fail "creating Secret $name answered HTTP $status ${reason:-(no message)}" ;;
  esac
done
say "Secrets ready in namespace $namespace: $created created, $kept already there"
