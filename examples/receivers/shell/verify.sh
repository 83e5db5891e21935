#!/usr/bin/env bash
# Verifies one captured hookfleet delivery with openssl and base64.
#
#   WEBHOOK_SECRET=whsec_... verify.sh <webhook-id> <webhook-timestamp> '<webhook-signature>' < body.json
#
# The body must be the exact bytes received. ALLOW_OLD=1 skips the 5-minute
# timestamp check, to verify an old capture.
set -euo pipefail

if [ $# -ne 3 ] || [ -z "${WEBHOOK_SECRET:-}" ]; then
  echo "usage: WEBHOOK_SECRET=whsec_... $0 <webhook-id> <webhook-timestamp> '<webhook-signature>' < body.json" >&2
  exit 2
fi
id=$1
ts=$2
header=$3

if [ "${ALLOW_OLD:-}" != 1 ]; then
  now=$(date +%s)
  if ! [[ $ts =~ ^[0-9]{1,12}$ ]] || (( 10#$ts < now - 300 || 10#$ts > now + 300 )); then
    echo "timestamp too old or too new"
    exit 1
  fi
fi

# Keep the body byte-exact: a temp file, never a shell variable (that would drop trailing newlines).
body=$(mktemp)
trap 'rm -f "$body"' EXIT
cat > "$body"

# The key is the base64-decoded part after whsec_, given to openssl in hex.
key=$(printf '%s' "${WEBHOOK_SECRET#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
# The signed content is "<webhook-id>.<webhook-timestamp>.<body>".
expected=$({ printf '%s.%s.' "$id" "$ts"; cat "$body"; } |
  openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64 -w0)

# One "v1,<signature>" per valid secret, space separated: any match will do.
read -r -a signatures <<< "$header"
for sig in "${signatures[@]}"; do
  if [ "$sig" = "v1,$expected" ]; then
    echo "signature OK"
    exit 0
  fi
done
echo "signature mismatch"
exit 1
