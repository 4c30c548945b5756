#!/usr/bin/env bash
# Installs and starts the real login servers of tests/real_servers.rs, each from its package
# registry into target/real/NAME, on 127.0.0.1 at a free port:
#
#   allauth      django-allauth's headless API with TOTP (PyPI, into a venv)
#   better-auth  better-auth with its two-factor plugin (npm)
#
#   eval "$(bash tests/real/start.sh)"           # all of them; or name some
#   cargo test --test real_servers -- --ignored
#   bash tests/real/start.sh --stop              # stops what it started
#
# Prints, and writes to target/real/NAME/env, the variables the tests read:
# OTVI_REAL_<NAME>_URL and OTVI_REAL_<NAME>_TOTP_SECRET (the TOTP account's secret). Both
# servers have the accounts `plain@example.com` (password only) and `totp@example.com`
# (password and TOTP), password `correct horse battery staple`.
#
# Idempotent: an install is redone only when its pinned versions change, and a server that
# is already running and answering is left as it is. Non-interactive (CI=true, no stdin).
# Everything it says goes to stderr, so only the variables reach the `eval`.
set -euo pipefail
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 npm_config_fund=false \
    npm_config_audit=false npm_config_update_notifier=false

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state_root=${OTVI_REAL_DIR:-$root/target/real}
all=(allauth better-auth)

say() { echo "real servers: $*" >&2; }

stop=false
if [ "${1:-}" = "--stop" ]; then
    stop=true
    shift
fi
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")

# The variable prefix of a server: better-auth -> OTVI_REAL_BETTER_AUTH.
prefix() { echo "OTVI_REAL_$(echo "$1" | tr 'a-z-' 'A-Z_')"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { # DIR: its server process runs and answers on its port
    local dir=$1
    [ -f "$dir/pid" ] && [ -f "$dir/port" ] || return 1
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || return 1
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$(cat "$dir/port")/" || return 1
}

wait_for() { # DIR PATH STATUS: polls until GET PATH answers STATUS (60 s at most)
    local dir=$1 path=$2 want=$3 got
    for _ in $(seq 1 300); do
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            say "$(basename "$dir") exited; its log:"
            cat "$dir/server.log" >&2
            return 1
        fi
        got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
            "http://127.0.0.1:$(cat "$dir/port")$path" || true)
        [ "$got" = "$want" ] && return 0
        sleep 0.2
    done
    say "$(basename "$dir") did not answer $path with $want in 60 s; its log:"
    cat "$dir/server.log" >&2
    return 1
}

stop_one() {
    local dir=$state_root/$1
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        # The server was started in a session of its own: its process group is its id.
        kill -- "-$(cat "$dir/pid")" 2>/dev/null || kill "$(cat "$dir/pid")" || true
        say "$1 stopped"
    fi
    rm -f "$dir/pid" "$dir/port" "$dir/env" "$dir/ready"
}

launch() { # DIR COMMAND…: starts COMMAND in its own session, its output to DIR/server.log
    local dir=$1
    shift
    setsid "$@" </dev/null >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
}

install_allauth() {
    local dir=$1 stamp
    stamp=$(cat "$here/allauth/requirements.txt" <(python3 --version))
    if [ ! -x "$dir/venv/bin/python" ] || [ "$(cat "$dir/venv/installed" 2>/dev/null)" != "$stamp" ]; then
        say "installing django-allauth into $dir/venv"
        rm -rf "$dir/venv"
        python3 -m venv "$dir/venv"
        "$dir/venv/bin/pip" install --quiet -r "$here/allauth/requirements.txt" </dev/null >&2
        echo "$stamp" >"$dir/venv/installed"
    fi
}

start_allauth() {
    local dir=$1
    install_allauth "$dir"
    [ -s "$dir/secret-key" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(50))' >"$dir/secret-key"
    export ALLAUTH_STATE_DIR=$dir PYTHONPYCACHEPREFIX=$dir/pycache
    local manage=("$dir/venv/bin/python" "$here/allauth/manage.py")
    (cd "$here/allauth" && "${manage[@]}" migrate --verbosity 0 </dev/null >&2)
    (cd "$here/allauth" && "${manage[@]}" shell --verbosity 0 -c "import accounts; accounts.main()" </dev/null >&2)
    free_port >"$dir/port"
    (cd "$here/allauth" && launch "$dir" "${manage[@]}" runserver --noreload \
        "127.0.0.1:$(cat "$dir/port")")
    wait_for "$dir" /_allauth/app/v1/config 200
}

install_better_auth() {
    local dir=$1 stamp
    stamp=$(cat "$here/better-auth/package.json" "$here/better-auth/package-lock.json" <(node --version))
    if [ ! -d "$dir/app/node_modules" ] || [ "$(cat "$dir/app/installed" 2>/dev/null)" != "$stamp" ]; then
        say "installing better-auth into $dir/app"
        rm -rf "$dir/app"
        mkdir -p "$dir/app"
        cp "$here/better-auth/package.json" "$here/better-auth/package-lock.json" "$dir/app/"
        (cd "$dir/app" && npm ci --no-progress --silent </dev/null >&2)
        echo "$stamp" >"$dir/app/installed"
    fi
    cp "$here/better-auth/server.mjs" "$dir/app/"
}

start_better_auth() {
    local dir=$1
    install_better_auth "$dir"
    rm -f "$dir/ready" "$dir/totp-secret"
    free_port >"$dir/port"
    launch "$dir" node "$dir/app/server.mjs" "$dir" "$(cat "$dir/port")"
    wait_for "$dir" /api/auth/ok 200
    for _ in $(seq 1 100); do
        [ -f "$dir/ready" ] && return 0
        sleep 0.1
    done
    say "better-auth did not create its accounts; its log:"
    cat "$dir/server.log" >&2
    return 1
}

for name in "${names[@]}"; do
    case $name in
        allauth | better-auth) ;;
        *)
            say "unknown server '$name' (known: ${all[*]})"
            exit 2
            ;;
    esac
    dir=$state_root/$name
    if $stop; then
        stop_one "$name"
        continue
    fi
    mkdir -p "$dir"
    if alive "$dir" && [ -s "$dir/env" ]; then
        say "$name already running on 127.0.0.1:$(cat "$dir/port")"
    else
        stop_one "$name"
        started=$(date +%s)
        "start_${name//-/_}" "$dir"
        var=$(prefix "$name")
        {
            echo "export ${var}_URL=http://127.0.0.1:$(cat "$dir/port")"
            echo "export ${var}_TOTP_SECRET=$(tr -d '[:space:]' <"$dir/totp-secret")"
        } >"$dir/env"
        say "$name listening on 127.0.0.1:$(cat "$dir/port") ($(($(date +%s) - started)) s; log: $dir/server.log)"
    fi
    cat "$dir/env"
done
