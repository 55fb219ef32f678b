#!/usr/bin/env bash
# Checks a deployed Scalable Hello World from the outside, as a person would use it:
#   scripts/smoke.sh http://127.0.0.1:8080        (run-local.sh, or skaffold's port-forward)
#   scripts/smoke.sh http://$(minikube ip):30080   (the NodePort)
#   scripts/smoke.sh https://<your>.ngrok.app      (a tunnel)
# The page; a claimed name; a hello sent to it; a reliable read with the name's token, confirmed,
# and nothing left after it; a read without the token refused; bad input answered with
# problem+json; the serving pod named in every answer; /metrics not served to the public; the
# name released again. Needs only bash and curl. Ends with one line: "smoke: OK ..." or
# "smoke: FAILED ...", and exits 0 or 1.
set -uo pipefail

usage() {
  echo "usage: scripts/smoke.sh URL   (for example http://127.0.0.1:8080)" >&2
  exit 2
}
[ $# -eq 1 ] || usage
url="${1%/}"
case "$url" in http://* | https://*) ;; *) usage ;; esac
command -v curl >/dev/null || { echo "smoke: FAILED: curl is missing (apt-get install -y curl)"; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
name="smoke$(date +%s)$RANDOM"
checks=0

fail() {
  echo "smoke: FAILED: $*"
  exit 1
}

# call METHOD PATH [curl options...]: sets $status, the body in $work/body, headers in $work/headers.
call() {
  local method="$1" path="$2"
  shift 2
  status="$(curl -sS --max-time 15 -o "$work/body" -D "$work/headers" -w '%{http_code}' -X "$method" "$@" "$url$path" 2>"$work/error")" \
    || fail "$method $path: no answer from $url ($(cat "$work/error")). Is it deployed and reachable? Check the URL, the port-forward or the tunnel"
}

# expect STATUS WHAT: the last call answered STATUS, and named its pod.
expect() {
  [ "$status" = "$1" ] || fail "$2: expected $1, got $status: $(head -c 300 "$work/body")"
  grep -qi '^x-pod-name: .' "$work/headers" || fail "$2: the answer does not name its pod (X-Pod-Name)"
  checks=$((checks + 1))
}

# field NAME: a string field of the JSON body (the API's answers are flat enough for sed).
field() {
  sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$work/body" | head -n 1
}

echo "==> Checking $url"

call GET /
expect 200 "the page"
grep -q "Scalable Hello World" "$work/body" || fail "the page at $url/ is not Scalable Hello World's"

call POST "/names/$name"
expect 201 "claiming $name"
token="$(field token)"
case "$token" in hw_*) ;; *) fail "claiming $name answered no token" ;; esac
auth=(-H "Authorization: Bearer $token")

call POST "/hello/$name" -H 'Content-Type: application/json' -H "Idempotency-Key: $name-1" -d '{"from":"smoke-test"}'
expect 201 "sending a hello to $name"

call POST "/hello/$name/reads"
expect 401 "reading the claimed $name without its token"

call POST "/hello/$name/reads" "${auth[@]}"
expect 201 "a reliable read of $name with its token"
grep -q '"from":"smoke-test"' "$work/body" || fail "the read of $name did not return the hello just sent: $(head -c 300 "$work/body")"
receipt="$(field receipt)"
[ -n "$receipt" ] || fail "the read of $name answered no receipt"

call DELETE "/hello/$name/reads/$receipt" "${auth[@]}"
expect 204 "confirming the read of $name"

call POST "/hello/$name/reads" "${auth[@]}"
expect 201 "reading $name again"
grep -q '"hellos":\[\]' "$work/body" || fail "a confirmed hello came back: $(head -c 300 "$work/body")"

call POST '/hello/%24bad' -H 'Content-Type: application/json' -d '{"from":"smoke-test"}'
expect 400 "a hello to an invalid name"
grep -qi '^content-type: application/problem+json' "$work/headers" || fail "bad input was not answered with application/problem+json"

call GET /metrics
[ "$status" = 404 ] || fail "/metrics is served to the public ($status): it must be scraped inside the cluster only"
checks=$((checks + 1))

call DELETE "/names/$name" "${auth[@]}"
expect 204 "releasing $name"

echo "smoke: OK: $url passed $checks checks (page, claim, send, reliable read and confirm, ownership, problem+json, /metrics not public, release)"
