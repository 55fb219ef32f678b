#!/usr/bin/env bash
# Moves a deployment made with 0.1.0 off the password that used to be committed to git.
#
# Up to 0.1.0 the Secret `mongodb-credentials` (in git, password "change-me-in-production")
# created MongoDB's root user and world-service connected as that root user. Now the hello-secrets
# Job makes `mongodb-root` and `mongodb-app` with random values, and world-service connects as its
# own user (readWrite on its database only). A new, empty volume is set up that way by itself;
# an existing volume is never initialised again, so this script does it once, by hand:
#
#   1. kubectl apply -k deploy/overlays/minikube      (the Job makes the new Secrets; the new app
#                                                       pods wait, not ready, the old ones serve)
#   2. ./scripts/upgrade-mongodb-credentials.sh        (this: creates world-service's user and the
#                                                       new root user in MongoDB, removes the old
#                                                       root user, restarts the app, deletes the
#                                                       old Secret)
#
# Options:
#   --namespace NS   where the app runs (default scalable-hello)
#   --database DB    world-service's database (default hello, WORLD_MONGODB_DATABASE)
#   -h, --help       this help
# Safe to run again: users that exist are updated, not duplicated. Credentials travel only on
# kubectl's standard input (base64, as the Secrets hold them), never on a command line.
set -euo pipefail

namespace=scalable-hello
database=hello

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) [ $# -ge 2 ] || fail "--namespace needs a namespace"; namespace=$2; shift ;;
    --database) [ $# -ge 2 ] || fail "--database needs a database name"; database=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; fail "unknown option: $1" ;;
  esac
  shift
done
[[ "$database" =~ ^[A-Za-z0-9_-]+$ ]] || fail "--database must be a MongoDB database name, not '$database'"

command -v kubectl >/dev/null || fail "kubectl is missing: install it, or use 'minikube kubectl --' (https://kubernetes.io/docs/tasks/tools/)"
kubectl get namespace "$namespace" >/dev/null 2>&1 \
  || fail "namespace $namespace not found: is kubectl pointed at the right cluster? (kubectl config current-context)"

# secret_field NAME KEY: the base64 value, as the Secret holds it ("" when absent).
secret_field() { kubectl -n "$namespace" get secret "$1" -o "jsonpath={.data.$2}" 2>/dev/null || true; }

if ! kubectl -n "$namespace" get secret mongodb-credentials >/dev/null 2>&1; then
  say "No Secret mongodb-credentials in $namespace: nothing to upgrade (already done, or deployed with 0.2.0 or later)"
  exit 0
fi

say "Waiting for the Secrets the hello-secrets Job makes (mongodb-root, mongodb-app)"
for _ in $(seq 1 60); do
  if [ -n "$(secret_field mongodb-root password)" ] && [ -n "$(secret_field mongodb-app password)" ]; then break; fi
  sleep 2
done
if [ -z "$(secret_field mongodb-root password)" ] || [ -z "$(secret_field mongodb-app password)" ]; then
  fail "mongodb-root and mongodb-app do not exist yet: apply the new manifests first (kubectl apply -k deploy/overlays/minikube), then check the Job: kubectl -n $namespace logs job/hello-secrets"
fi

say "Creating world-service's user and the new root user in MongoDB (mongodb-0), removing the old root user"
{
  printf 'const database = %s;\n' "\"$database\""
  printf 'const old = {user: "%s", pwd: "%s"};\n' "$(secret_field mongodb-credentials username)" "$(secret_field mongodb-credentials password)"
  printf 'const root = {user: "%s", pwd: "%s"};\n' "$(secret_field mongodb-root username)" "$(secret_field mongodb-root password)"
  printf 'const app = {user: "%s", pwd: "%s"};\n' "$(secret_field mongodb-app username)" "$(secret_field mongodb-app password)"
  cat <<'JS'
// The values above are base64, as Kubernetes keeps them.
const text = (value) => Buffer.from(value, 'base64').toString('utf8');
for (const who of [old, root, app]) { who.user = text(who.user); who.pwd = text(who.pwd); }
const connection = new Mongo('mongodb://127.0.0.1:27017/?directConnection=true');
const admin = connection.getDB('admin');
admin.auth(old.user, old.pwd);
const appDb = connection.getDB(database);
const appRoles = [{ role: 'readWrite', db: database }];
if (appDb.getUser(app.user)) {
  appDb.updateUser(app.user, { pwd: app.pwd, roles: appRoles });
  print(`updated ${app.user}: readWrite on ${database} only`);
} else {
  appDb.createUser({ user: app.user, pwd: app.pwd, roles: appRoles });
  print(`created ${app.user}: readWrite on ${database} only`);
}
if (old.user === root.user) {
  admin.changeUserPassword(root.user, root.pwd);
  print(`changed ${root.user}'s password to mongodb-root's`);
} else {
  if (!admin.getUser(root.user)) {
    admin.createUser({ user: root.user, pwd: root.pwd, roles: ['root'] });
  }
  // Log in as the new root before the old one goes, so that a mistake cannot lock everyone out.
  const check = new Mongo('mongodb://127.0.0.1:27017/?directConnection=true').getDB('admin');
  check.auth(root.user, root.pwd);
  check.getSiblingDB('admin').dropUser(old.user);
  print(`created root user ${root.user}; removed the old root user ${old.user}`);
}
JS
} | kubectl -n "$namespace" exec -i mongodb-0 -c mongodb -- mongosh --quiet --norc --nodb \
  || fail "the MongoDB step failed (above). Nothing was deleted: fix the cause and run this again"

say "Restarting the app so that every pod connects as world-service's user"
kubectl -n "$namespace" rollout restart deployment/hello >/dev/null || fail "kubectl rollout restart deployment/hello failed (above)"
kubectl -n "$namespace" rollout status deployment/hello --timeout=300s \
  || fail "the app did not become ready: kubectl -n $namespace logs deployment/hello -c world"

say "Deleting the old Secret mongodb-credentials (its password was public)"
kubectl -n "$namespace" delete secret mongodb-credentials >/dev/null || fail "could not delete Secret mongodb-credentials (above)"
say "Done: MongoDB's credentials are the random ones made at deploy time; world-service uses its own least-privilege user"
