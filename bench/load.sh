#!/usr/bin/env bash
# Load benchmark: the release server against a fast local mock provider (nginx answering the
# login endpoint with fixed JSON), driven by wrk, side by side with the ceiling: nginx itself
# answering that body on the server's core, driven by the same wrk script.
#
# For the ceiling, a single-step login and `check`, at 1, 16 and 64 connections: requests/s,
# p50/p99 latency, errors (non-2xx, socket errors, `success:false`), the CPU time per request
# of the process under test (/proc utime+stime, all its threads) and its ratio to the
# ceiling's at the same connection count, and its context switches per request (how often it
# slept and was woken), and for login the session writes per SQLite commit (writes that reach
# the store together share one). Ratios are what to compare: absolute figures move with the
# machine.
#
# The process under test (the server, or the ceiling's nginx) is pinned to core 0; the mock
# provider and wrk to core 1 (taskset).
#
#   bench/load.sh                        # 10 s per measurement
#   DURATION=30s bench/load.sh
#   CONNS="64" bench/load.sh             # only these connection counts
#   PERF_DIR=/tmp/prof bench/load.sh     # also `perf record -g` the server, one file per row
#   OTVI_BIN=path/to/otvi bench/load.sh  # another build of the server (see bench/README.md)
#   DATABASE_URL=postgres://… bench/load.sh   # the server on PostgreSQL instead of SQLite
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
SERVER_PORT=${SERVER_PORT:-38080}
MOCK_PORT=${MOCK_PORT:-38081}
CEILING_PORT=${CEILING_PORT:-38082}
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ -n "${PERF_DIR:-}" ] && ! command -v perf >/dev/null; then need+=(linux-perf); fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} from Debian's packages" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "${OTVI_BIN:-}" ]; then
    cargo build --release -q --bin otvi
fi
BIN=${OTVI_BIN:-target/release/otvi}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

BODY='{"data":{"access_token":"at-bench","refresh_token":"rt-bench","user":{"display_name":"bench","id":"u1"}}}'
# nginx answering BODY: NAME PORT CORE LOCATION
start_nginx() {
    mkdir -p "$work/$1"
    cat > "$work/$1/nginx.conf" <<NGINX
worker_processes 1;
pid $work/$1.pid;
error_log $work/$1/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/$1;
    server {
        listen 127.0.0.1:$2;
        location $4 {
            default_type application/json;
            return 200 '$BODY';
        }
        location / { return 404; }
    }
}
NGINX
    taskset -c "$3" "$NGINX" -c "$work/$1/nginx.conf"
}
# The mock provider, and the ceiling: nginx answering every path with the same body. The mock
# answers acme's login, and its session check and logout with 200 too, so that `check` finds
# the session working (and asks again only when its cache lifetime ends) and a re-login's
# logout of the old session is answered.
start_nginx mock "$MOCK_PORT" 1 "~ ^/v2/auth/(login|session|logout)$"
start_nginx ceiling "$CEILING_PORT" 0 "/api/"

export OTVI_JWT_SECRET=bench-secret-0123456789abcdef-01234
# The shipped Indee provider needs its API key to start; the benchmark never calls it.
OTVI_SESSION_KEY="$("$BIN" session-key)" INDEE_API_KEY=bench-unused RUST_LOG=${RUST_LOG:-warn} \
    taskset -c 0 "$BIN" serve --bind "127.0.0.1:$SERVER_PORT" \
    --database-url "${DATABASE_URL:-sqlite://$work/otvi.db?mode=rwc}" \
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
failures = 0
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
export TOKENS="$work/tokens.lua" COMMON="$work/common.lua"

# CPU ticks of a process and all its threads (for nginx: master and worker).
cpu_ticks() {
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}
# Context switches of each thread of these processes, "tid count" (voluntary: it slept;
# involuntary: it was preempted): how often the process under test was put to sleep and woken.
# A row's figure sums the threads alive at both ends of it.
switches() {
    local p f
    for p in "$@"; do
        for f in /proc/"$p"/task/*/status; do
            awk -v f="$f" '/ctxt_switches/ {s += $2} END {split(f, a, "/"); print a[5], s + 0}' "$f" 2>/dev/null
        done
    done
}
# Transactions the server's SQLite store has committed (empty: not reported).
commits() {
    { curl -fs "http://127.0.0.1:$SERVER_PORT/metrics" || true; } | awk '/^otvi_store_commits_total/ {print $2}'
}
TICK=$(getconf CLK_TCK)
ceiling_master=$(cat "$work/ceiling.pid")
ceiling_pids="$ceiling_master $(pgrep -P "$ceiling_master" | tr '\n' ' ')"

declare -A base
printf "%-7s %5s %10s %9s %9s %7s %7s %7s %11s %7s %8s %8s\n" what conns req/s p50 p99 non2xx sockerr sfalse cpu/req ratio csw/req w/commit
# what conns script port pids...
measure() {
    local what=$1 conns=$2 script=$3 port=$4
    shift 4
    local threads=$((conns < 2 ? 1 : 2)) before after sw_before sw_after out perf_pid="" c_before="" c_after=""
    if [ -n "${PERF_DIR:-}" ] && [ "$what" != ceiling ]; then
        mkdir -p "$PERF_DIR"
        perf record -q -g -F 999 -p "$server" -o "$PERF_DIR/$what-$conns.data" 2>/dev/null &
        perf_pid=$!
        sleep 0.3
    fi
    [ "$what" = login ] && c_before=$(commits)
    before=$(cpu_ticks "$@")
    sw_before=$(switches "$@")
    out=$(taskset -c 1 wrk -t"$threads" -c"$conns" -d"$DURATION" --latency -s "$work/$script.lua" "http://127.0.0.1:$port")
    [ -n "${SHOW_WRK:-}" ] && echo "$out" >&2
    after=$(cpu_ticks "$@")
    sw_after=$(switches "$@")
    [ "$what" = login ] && c_after=$(commits)
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
    local reqs rps p50 p99 non2xx sock sfalse cpu ratio csw per_commit=-
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    sock=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}')
    sfalse=$(echo "$out" | awk '/SUCCESS_FALSE/ {print $2}')
    cpu=$(awk -v d=$((after - before)) -v t="$TICK" -v n="$reqs" 'BEGIN {printf "%.1f", d / t * 1e6 / n}')
    csw=$(awk -v n="$reqs" 'NR == FNR {b[$1] = $2; next} $1 in b {d += $2 - b[$1]} END {printf "%.2f", d / n}' \
        <(echo "$sw_before") <(echo "$sw_after"))
    if [ -n "$c_before" ] && [ -n "$c_after" ] && [ "$c_after" != "$c_before" ]; then
        per_commit=$(awk -v n="$reqs" -v c=$((c_after - c_before)) 'BEGIN {printf "%.2f", n / c}')
    fi
    if [ "$what" = ceiling ]; then
        base[$conns]=$cpu
        ratio=1.00
    else
        ratio=$(awk -v c="$cpu" -v b="${base[$conns]}" 'BEGIN {printf "%.2f", c / b}')
    fi
    printf "%-7s %5s %10s %9s %9s %7s %7s %7s %8s us %6sx %8s %8s\n" "$what" "$conns" "$rps" "$p50" "$p99" \
        "${non2xx:-0}" "${sock:-0}" "${sfalse:-0}" "$cpu" "$ratio" "$csw" "$per_commit"
}

# Warm up: every user logs in once so `check` finds sessions; pools fill.
taskset -c 1 wrk -t1 -c16 -d2s -s "$work/login.lua" "http://127.0.0.1:$SERVER_PORT" >/dev/null
for conns in ${CONNS:-1 16 64}; do
    # shellcheck disable=SC2086
    measure ceiling "$conns" login "$CEILING_PORT" $ceiling_pids
    measure login "$conns" login "$SERVER_PORT" "$server"
    measure check "$conns" check "$SERVER_PORT" "$server"
done
if grep -qi "error" "$work/server.log"; then
    echo "server log has errors:" >&2
    grep -i error "$work/server.log" | head -5 >&2
fi
