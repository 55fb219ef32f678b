#!/usr/bin/env bash
# A steady, bounded load on a deployed Scalable Hello World, the way the page uses it: each round
# sends a hello to one of its own claimed names, reads that inbox reliably with the name's token,
# and confirms the read. Something to watch on the dashboards (and to make the HPA scale); it
# says what it did, and exits non-zero when too much failed.
#
#   load.sh URL                          e.g. load.sh http://hello.scalable-hello.svc.cluster.local
#
# Settings (environment), each bounded:
#   RATE=5          rounds per second per worker (1 to 50; a round is 3 requests)
#   WORKERS=1       workers in parallel, each with its own names (1 to 8)
#   DURATION=60     seconds to run (1 to 3600)
#   MAX_ERRORS=10   failed requests (5xx, no answer, or not the answer the API promises) after
#                   which it stops and exits 1; 429s (rate limits) are counted apart, not failures
#
# Runs in the hello-tools image as the load-generator component's Job; needs only bash and curl.
set -uo pipefail

url=${1:-}
[ -n "$url" ] || { echo "load: FAILED: name the app's URL, e.g. load.sh http://127.0.0.1:8080" >&2; exit 2; }
url=${url%/}
command -v curl >/dev/null || { echo "load: FAILED: curl is missing (apt-get install -y curl)" >&2; exit 2; }

# bounded NAME VALUE LOW HIGH: VALUE if it is a whole number in [LOW, HIGH], else stop.
bounded() {
  if ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
    echo "load: FAILED: $1=$2 must be a whole number from $3 to $4" >&2
    exit 2
  fi
  printf '%s' "$2"
}
rate=$(bounded RATE "${RATE:-5}" 1 50) || exit 2
workers=$(bounded WORKERS "${WORKERS:-1}" 1 8) || exit 2
duration=$(bounded DURATION "${DURATION:-60}" 1 3600) || exit 2
max_errors=$(bounded MAX_ERRORS "${MAX_ERRORS:-10}" 0 100000) || exit 2

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# request WORKER METHOD PATH [curl options]: the status (000 when nothing answered); the body in
# $work/WORKER.body.
request() {
  local worker=$1 method=$2 path=$3
  shift 3
  curl -sS --max-time 10 -o "$work/$worker.body" -w '%{http_code}' -X "$method" "$@" "$url$path" 2>/dev/null || true
}

field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$work/$2.body" | head -n 1; }

# worker N: rounds until the time is up or the errors pass MAX_ERRORS; counts into $work/N.counts.
worker() {
  local n=$1 name token status receipt rounds=0 ok=0 errors=0 limited=0 started deadline interval next
  name="load$(printf '%04x%04x' $RANDOM $RANDOM)w$n"
  status=$(request "$n" POST "/names/$name")
  if [ "$status" != 201 ]; then
    echo "load: worker $n could not claim $name: HTTP $status $(head -c 200 "$work/$n.body" 2>/dev/null)" >&2
    touch "$work/$n.could-not-start"
    echo "0 0 0 0" > "$work/$n.counts"
    return
  fi
  token=$(field token "$n")
  started=$(date +%s)
  deadline=$((started + duration))
  interval=$(awk -v rate="$rate" 'BEGIN { printf "%.3f", 1 / rate }')
  while [ "$(date +%s)" -lt "$deadline" ] && [ "$errors" -le "$max_errors" ]; do
    next=$(awk -v now="$EPOCHREALTIME" -v step="$interval" 'BEGIN { printf "%.3f", now + step }')
    rounds=$((rounds + 1))
    for step in send read confirm; do
      case $step in
        send) status=$(request "$n" POST "/hello/$name" -H 'Content-Type: application/json' \
                -H "Idempotency-Key: $name-$rounds" -d "{\"from\":\"load-$n\"}"); want=201 ;;
        read) status=$(request "$n" POST "/hello/$name/reads?limit=100" -H "Authorization: Bearer $token"); want=201 ;;
        confirm)
          receipt=$(field receipt "$n")
          [ -n "$receipt" ] || continue # nothing was leased: nothing to confirm
          status=$(request "$n" DELETE "/hello/$name/reads/$receipt" -H "Authorization: Bearer $token"); want=204 ;;
      esac
      if [ "$status" = "$want" ]; then ok=$((ok + 1))
      elif [ "$status" = 429 ]; then limited=$((limited + 1))
      else
        errors=$((errors + 1))
        [ "$errors" -le 3 ] && echo "load: worker $n: $step answered $status (wanted $want): $(head -c 200 "$work/$n.body" 2>/dev/null)" >&2
      fi
    done
    # Keep the rate: wait out what is left of this round's share of a second.
    awk -v until="$next" -v now="$EPOCHREALTIME" 'BEGIN { if (until > now) exit 0; exit 1 }' \
      && sleep "$(awk -v until="$next" -v now="$EPOCHREALTIME" 'BEGIN { printf "%.3f", until - now }')"
  done
  request "$n" DELETE "/names/$name" -H "Authorization: Bearer $token" >/dev/null
  echo "$rounds $ok $errors $limited" > "$work/$n.counts"
}

echo "==> load: $workers worker(s) x $rate rounds/s (send, reliable read, confirm) for ${duration} s against $url"
for n in $(seq 1 "$workers"); do
  worker "$n" &
  pids+=($!)
done
wait
rounds=0 ok=0 errors=0 limited=0
for n in $(seq 1 "$workers"); do
  read -r r o e l < "$work/$n.counts" || { r=0 o=0 e=1 l=0; }
  rounds=$((rounds + r)) ok=$((ok + o)) errors=$((errors + e)) limited=$((limited + l))
done
summary="$rounds rounds, $ok requests answered as promised, $limited rate-limited (429), $errors failed"
if compgen -G "$work/*.could-not-start" >/dev/null; then
  echo "load: FAILED: $summary: a worker could not claim its name (above): is $url the app, and ready?"
  exit 1
fi
if [ "$errors" -gt "$max_errors" ]; then
  echo "load: FAILED: $summary: more than MAX_ERRORS=$max_errors (see the first failures above; is the app ready? kubectl -n scalable-hello get pods)"
  exit 1
fi
echo "load: OK: $summary"
