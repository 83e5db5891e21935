#!/usr/bin/env bash
# `make run`: the whole path on one machine. Builds hookfleet, migrates, starts a
# local receiver that verifies signatures (`hookfleet listen`), registers a demo
# endpoint pointing at it, runs every role (`hookfleet all`), publishes the six
# SoundHash sample events, and shows them arriving verified. Ctrl-C stops it all
# and removes the demo endpoint.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PORT="${DEMO_PORT:-9000}"
RUN_DIR="${TMPDIR:-/tmp}/hookfleet-demo.$(id -u)"
mkdir -p "$RUN_DIR"

echo "==> building hookfleet (release)"
cargo build --release -q -p hookfleet
BIN="$PWD/target/release/hookfleet"

# Deliveries to 127.0.0.1 are refused by default (SSRF protection): open loopback.
export HOOKFLEET__DELIVERY__ALLOW_NETWORKS="${HOOKFLEET__DELIVERY__ALLOW_NETWORKS:-127.0.0.0/8}"
export HOOKFLEET__LOG__LEVEL="${HOOKFLEET__LOG__LEVEL:-warn,hookfleet=info}"
# The REST API runs inside `hookfleet all` when an admin key is set.
export HOOKFLEET__API__ADMIN_KEY="${HOOKFLEET__API__ADMIN_KEY:-demo-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
# Signing secrets are sealed in PostgreSQL with this key (kept for the next run).
KEYFILE=target/demo-sealing-key
[ -s "$KEYFILE" ] || echo "demo:$(head -c 32 /dev/urandom | base64 | tr -d '\n')" > "$KEYFILE"
export HOOKFLEET__SECRETS__ENCRYPTION_KEYS="${HOOKFLEET__SECRETS__ENCRYPTION_KEYS:-$(cat "$KEYFILE")}"
API="http://${HOOKFLEET__API__LISTEN:-127.0.0.1:8080}"

echo "==> migrating the database"
"$BIN" migrate

pids=()
endpoint_id=""
cleanup() {
  trap - EXIT INT TERM
  echo
  if [ -n "$endpoint_id" ]; then
    echo "==> removing demo endpoint $endpoint_id"
    "$BIN" endpoint delete "$endpoint_id" >/dev/null 2>&1 || true
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "==> stopped"
}
trap cleanup EXIT INT TERM

SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
echo "==> starting a local receiver on http://127.0.0.1:$PORT/ (hookfleet listen)"
"$BIN" listen --port "$PORT" --secret "$SECRET" >"$RUN_DIR/listen.log" 2>&1 &
pids+=($!)

echo "==> registering a demo endpoint for every event type"
"$BIN" endpoint add --url "http://127.0.0.1:$PORT/webhooks" --events '*' --secret "$SECRET" \
  --description "make run demo" >"$RUN_DIR/endpoint.json"
endpoint_id="$(sed -n 's/.*"id": "\(ep_[^"]*\)".*/\1/p' "$RUN_DIR/endpoint.json" | head -n1)"
echo "    $endpoint_id -> http://127.0.0.1:$PORT/webhooks"

echo "==> starting router + worker + REST API (hookfleet all); logs in $RUN_DIR/all.log"
"$BIN" all >"$RUN_DIR/all.log" 2>&1 &
pids+=($!)
metrics="${HOOKFLEET__METRICS__LISTEN:-127.0.0.1:9464}"
for _ in $(seq 1 100); do
  if curl -fsS "http://$metrics/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done

echo "==> publishing the six SoundHash sample events (hookfleet emit)"
"$BIN" emit match.found --data '{"match_id":42,"query_video_id":"dQw4w9WgXcQ","matched_video_id":"9bZkp7q19f0","confidence":0.95,"segment_start":30.5,"segment_end":45.2}'
"$BIN" emit video.processed --data '{"video_id":7,"video_url":"https://example.com/v/7","title":"Demo","duration":212.4,"fingerprint_count":1337,"processing_time_seconds":12.8}'
"$BIN" emit job.failed --data '{"job_id":99,"job_type":"fingerprint","target_id":"dQw4w9WgXcQ","error_message":"download timed out","attempt_count":3}'
"$BIN" emit user.created --data '{"user_id":1001,"username":"ada","email":"ada@example.com"}'
"$BIN" emit subscription.updated --data '{"subscription_id":5,"user_id":1001,"plan_tier":"pro","status":"active","previous_plan":"free"}'
"$BIN" emit api_limit.reached --data '{"user_id":1001,"limit_type":"api_calls","current_usage":9000,"limit_value":10000,"reset_at":"2026-12-28T00:00:00Z"}'

for _ in $(seq 1 100); do
  [ "$(grep -c 'signature OK' "$RUN_DIR/listen.log" || true)" -ge 6 ] && break
  sleep 0.2
done
echo
echo "==> what the receiver got:"
cat "$RUN_DIR/listen.log"
ok="$(grep -c 'signature OK' "$RUN_DIR/listen.log" || true)"
echo
echo "==> $ok of 6 events delivered with verified Standard Webhooks signatures"
echo "    metrics: http://$metrics/metrics   readiness: http://$metrics/readyz"
echo "    publish more:  $BIN emit user.created --data '{\"user_id\":2,\"username\":\"bob\"}'"
echo
echo "==> the REST API: $API  (interactive docs: $API/docs)"
echo "    admin key: $HOOKFLEET__API__ADMIN_KEY"
echo "    curl -s -H 'Authorization: Bearer $HOOKFLEET__API__ADMIN_KEY' $API/api/v1/webhooks"
echo "    curl -s -H 'Authorization: Bearer $HOOKFLEET__API__ADMIN_KEY' $API/api/v1/webhooks/$endpoint_id/deliveries"
echo "    curl -s -H 'Authorization: Bearer $HOOKFLEET__API__ADMIN_KEY' -H 'Content-Type: application/json' \\"
echo "         -d '{\"type\":\"user.created\",\"data\":{\"user_id\":3,\"username\":\"cy\"}}' $API/api/v1/events"
# The tenant portal: a tenant "demo" and a link that signs it in (valid 1 h).
curl -s -o /dev/null -H "Authorization: Bearer $HOOKFLEET__API__ADMIN_KEY" -H 'Content-Type: application/json' \
  -d '{"id":"demo"}' "$API/api/v1/tenants" || true
portal="$(curl -s -X POST -H "Authorization: Bearer $HOOKFLEET__API__ADMIN_KEY" "$API/api/v1/tenants/demo/portal-link" \
  | sed -n 's/.*"url":"\([^"]*\)".*/\1/p')"
if [ -n "$portal" ]; then
  echo
  echo "==> the tenant portal for tenant \"demo\" (open in a browser; the link works for 1 h):"
  echo "    $portal"
  echo "    (a new link: curl -X POST -H 'Authorization: Bearer <admin key>' $API/api/v1/tenants/demo/portal-link)"
fi
if [ -t 0 ] && [ -z "${CI:-}" ]; then
  echo "    hookfleet keeps running; Ctrl-C stops it. New deliveries appear below."
  tail -n 0 -f "$RUN_DIR/listen.log"
fi
[ "$ok" -ge 6 ]
