#!/usr/bin/env bash
# Property-based checks of the API against its own OpenAPI document: schemathesis (PyPI) runs
# every phase (examples, coverage, fuzzing, stateful) against `otvi demo` on loopback and fails
# on any 5xx, any status, content type, header or body the document does not describe, and any
# request the schema forbids that is accepted.
#
# One check is left out: positive_data_acceptance. A body that fits the schema can still be
# refused with a documented 400 that the schema cannot express (a flow's required input missing,
# a step out of the flow's range): what is required depends on the flow, which the document
# describes per provider in GET /api/providers, not in the request schema.
#
#   bash tests/schemathesis.sh       # MAX_EXAMPLES=60 and SEED=1 by default
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${MAX_EXAMPLES:-60}

if ! python3 -c "from importlib.metadata import version; assert version('schemathesis') == '$SCHEMATHESIS_VERSION'" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}" </dev/null
fi

cargo build -q --bin otvi
out=$(mktemp)
./target/debug/otvi demo --bind 127.0.0.1:0 >"$out" 2>"$out.log" &
demo=$!
trap 'kill $demo 2>/dev/null || true; wait $demo 2>/dev/null || true; rm -f "$out" "$out.log"' EXIT

for _ in $(seq 1 100); do
    grep -q '^export TOKEN=' "$out" && break
    sleep 0.1
done
token=$(grep -m1 '^export TOKEN=' "$out" | cut -d= -f2)
base=$(grep -m1 -o 'server on http://[0-9.:]*' "$out" | cut -d' ' -f3)
[ -n "$token" ] && [ -n "$base" ] || { echo "the demo did not start:" >&2; cat "$out" "$out.log" >&2; exit 1; }

python3 -m schemathesis.cli run "$base/api/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "$MAX_EXAMPLES" \
    --seed "${SEED:-1}" \
    --no-color
