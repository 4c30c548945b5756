#!/usr/bin/env bash
# Load benchmark: the release server against a fast local mock provider (nginx answering the
# login endpoint with fixed JSON), driven by wrk. Reports, for a single-step login and for
# `check`, requests/s and p50/p99 latency at 1, 16 and 64 connections, errors (non-2xx, socket
# errors, `success:false`), and the server's CPU time per request from /proc utime+stime.
#
# The server is pinned to core 0, nginx and wrk to core 1 (taskset).
#
#   bench/load.sh                 # 10 s per measurement
#   DURATION=30s bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
SERVER_PORT=${SERVER_PORT:-38080}
MOCK_PORT=${MOCK_PORT:-38081}
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} from Debian's packages" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -q --bin otvi
BIN=target/release/otvi
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The mock provider: fixed JSON for the login endpoint.
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work;
    server {
        listen 127.0.0.1:$MOCK_PORT;
        location = /v2/auth/login {
            default_type application/json;
            return 200 '{"data":{"access_token":"at-bench","refresh_token":"rt-bench","user":{"display_name":"bench","id":"u1"}}}';
        }
        location / { return 404; }
    }
}
NGINX
taskset -c 1 "$NGINX" -c "$work/nginx.conf"

export OTVI_JWT_SECRET=bench-secret
# The shipped Indee provider needs its API key to start; the benchmark never calls it.
OTVI_SESSION_KEY="$("$BIN" session-key)" INDEE_API_KEY=bench-unused RUST_LOG=warn taskset -c 0 "$BIN" serve --bind "127.0.0.1:$SERVER_PORT" \
    --database-url "sqlite://$work/otvi.db?mode=rwc" \
    --provider-base-url "acme=http://127.0.0.1:$MOCK_PORT" 2>"$work/server.log" &
server=$!
pids+=("$server")
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$SERVER_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

# 256 users, each with a token; requests pick one at random.
{
    echo "tokens = {"
    for i in $(seq 1 256); do
        echo "  \"$("$BIN" token --sub "bench-$i" --ttl 86400)\","
    done
    echo "}"
} > "$work/tokens.lua"

cat > "$work/common.lua" <<'LUA'
dofile(os.getenv("TOKENS"))
local failures = 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  failures = 0
end
function response(status, headers, body)
  if body and string.find(body, '"success":false', 1, true) then
    failures = failures + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (t:get("failures") or 0)
  end
  io.write(string.format("SUCCESS_FALSE %d\n", total))
end
LUA
cat > "$work/login.lua" <<'LUA'
dofile(os.getenv("COMMON"))
local body = '{"flow_id":"email_password","step":0,"inputs":{"email":"bench@example.com","password":"pw"}}'
function request()
  local t = tokens[math.random(#tokens)]
  return wrk.format("POST", "/api/providers/acme/auth/login",
    {["Authorization"] = "Bearer " .. t, ["Content-Type"] = "application/json"}, body)
end
LUA
cat > "$work/check.lua" <<'LUA'
dofile(os.getenv("COMMON"))
function request()
  local t = tokens[math.random(#tokens)]
  return wrk.format("GET", "/api/providers/acme/auth/check", {["Authorization"] = "Bearer " .. t}, nil)
end
LUA
# wrk's response() keeps a per-thread global; expose it to done().
sed -i 's/^local failures = 0/failures = 0/' "$work/common.lua"
export TOKENS="$work/tokens.lua" COMMON="$work/common.lua"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
TICK=$(getconf CLK_TCK)

printf "%-6s %5s %10s %9s %9s %8s %8s %8s %12s\n" what conns req/s p50 p99 non2xx sockerr sfalse cpu/req
for what in login check; do
    # Warm up: every user logs in once so `check` finds sessions; pools fill.
    taskset -c 1 wrk -t1 -c16 -d2s -s "$work/login.lua" "http://127.0.0.1:$SERVER_PORT" >/dev/null
    for conns in 1 16 64; do
        threads=$(( conns < 2 ? 1 : 2 ))
        before=$(cpu_ticks)
        out=$(taskset -c 1 wrk -t"$threads" -c"$conns" -d"$DURATION" --latency -s "$work/$what.lua" "http://127.0.0.1:$SERVER_PORT")
        after=$(cpu_ticks)
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
        p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
        non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
        sock=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}')
        sfalse=$(echo "$out" | awk '/SUCCESS_FALSE/ {print $2}')
        cpu_us=$(awk -v d=$((after - before)) -v t="$TICK" -v n="$reqs" 'BEGIN {printf "%.1f us", d / t * 1e6 / n}')
        printf "%-6s %5s %10s %9s %9s %8s %8s %8s %12s\n" "$what" "$conns" "$rps" "$p50" "$p99" "${non2xx:-0}" "${sock:-0}" "${sfalse:-0}" "$cpu_us"
    done
done
if grep -qi "error" "$work/server.log"; then
    echo "server log has errors:" >&2
    grep -i error "$work/server.log" | head -5 >&2
fi
