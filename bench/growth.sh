#!/usr/bin/env bash
# Cost as the provider set grows. A benchmark, never a test: it asserts nothing.
#
# For each N, N provider files of 5 flows x 3 steps each (bench/growth/gen.py: JSON and form
# bodies from inputs and stored values, headers, query parameters, outcomes with `when`,
# extracts from JSON, headers and cookies, an OTP prompt, display fields, a session value, a
# logout) are compiled into a team crate made from examples/team (its Cargo.toml, profile
# included, build.rs without the audit copy, src/main.rs), with path dependencies on the
# checkout under test and its Cargo.lock, built `--offline`. Per N it reports:
#
#   check      `otvi-codegen check` on the N files (release build of the checker; hyperfine,
#              median of 10 runs after 2 warm-ups);
#   lines      lines of the generated modules the build compiles (OUT_DIR/otvi/*.rs);
#   rebuild    `cargo build --release` after one provider file changed (a request path in it
#              alternates between two values, so the generated code changes every time):
#              hyperfine, median wall time of RUNS runs, and the mean CPU time (user + system)
#              of those runs, which the load of other processes moves less than wall time;
#   script / rustc   one more such rebuild with `--timings`: cargo's own figures for the build
#              script's run (checking and emitting the N files) and for compiling and linking
#              the team crate;
#   bytes/provider   (size of the release binary with N providers - size with 1) / (N - 1).
#
# The machine's load (uptime) is printed before each measurement: compare runs made under
# similar load, and prefer the CPU column when it differs.
#
#   bench/growth.sh                          # N = 10 100 500, 5 rebuilds each
#   SIZES="100" RUNS=3 bench/growth.sh       # other sizes, fewer rebuilds
#   OTVI=/path/to/other/checkout bench/growth.sh   # measure another checkout (e.g. an older
#                                            # commit in a worktree) with this script
#   WORK=/tmp/g bench/growth.sh              # scratch directory; kept, so the dependencies
#                                            # compiled by the first run are reused (default:
#                                            # /tmp/otvi-growth-<hash of the checkout's path>)
#   CARGO_TARGET_DIR=/tmp/t bench/growth.sh  # a target directory shared between checkouts
#   TEAM_PROFILE=drop bench/growth.sh        # without the template's [profile.*] sections
#   TEAM_TOML_APPEND=$'[profile.release]\nincremental = false' bench/growth.sh
#                                            # text appended to the team crate's Cargo.toml
#
# Installs hyperfine (Debian) when it is missing; needs python3 and cargo. Runs unattended
# (CI=true, no standard input). The first run compiles the server's dependencies in release
# (about 10 minutes on 2 cores); a full run of 10/100/500 takes about half an hour more.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OTVI=$(cd "${OTVI:-$here/..}" && pwd)
SIZES=${SIZES:-"10 100 500"}
RUNS=${RUNS:-5}
WORK=${WORK:-/tmp/otvi-growth-$(printf %s "$OTVI" | cksum | cut -d' ' -f1)}
export CARGO_TERM_COLOR=never

if ! command -v hyperfine >/dev/null; then
    echo "installing hyperfine from Debian's packages" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is needed (bench/growth/gen.py)" >&2; exit 1; }

mkdir -p "$WORK"
# One target directory may serve several checkouts (the registry dependencies are shared).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$WORK/target}
load() { echo "load: $(uptime | sed 's/.*load average: //')"; }

echo "checkout under test: $OTVI ($(git -C "$OTVI" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "scratch: $WORK; $(nproc) cores"

# The checker, as CI and developers run it.
cargo build --release -q --offline --manifest-path "$OTVI/Cargo.toml" -p otvi-codegen
checker=$CARGO_TARGET_DIR/release/otvi-codegen

# The team crate: the template with path dependencies on the checkout under test.
team=$WORK/team
rm -rf "$team"
mkdir -p "$team/providers"
cp -r "$OTVI/examples/team/src" "$team/"
cp "$OTVI/Cargo.lock" "$team/"
python3 - "$OTVI" "$team" "${TEAM_PROFILE:-keep}" <<'PY'
import re, sys
otvi, team, profile = sys.argv[1:]
toml = open(f"{otvi}/examples/team/Cargo.toml").read()
git = 'git = "https://github.com/otvi-flows/otvi-flows"'
for d in ["runtime", "server", "codegen"]:
    toml = toml.replace(f'otvi-{d} = {{ {git}', f'otvi-{d} = {{ path = "{otvi}/{d}"')
assert git not in toml, toml
if profile == "drop":
    toml = re.sub(r"(?ms)^\[profile\..*?(?=^\[(?!profile\.)|\Z)", "", toml)
open(f"{team}/Cargo.toml", "w").write(toml)
build = open(f"{otvi}/examples/team/build.rs").read()
build = build.replace('        .audit_copy("generated")\n', "")
open(f"{team}/build.rs", "w").write(build)
PY
if [ -n "${TEAM_TOML_APPEND:-}" ]; then printf '\n%s\n' "$TEAM_TOML_APPEND" >>"$team/Cargo.toml"; fi
echo "--- team crate's Cargo.toml"; cat "$team/Cargo.toml"; echo "---"

build() { (cd "$team" && cargo build --release --offline -q "$@"); }
bin=$CARGO_TARGET_DIR/release/team-auth
out_dir() { ls -td "$CARGO_TARGET_DIR"/release/build/team-auth-*/out | head -1; }
# Alternates a request path of the first provider file: the generated code changes each time.
edit="sed -i -e 's#/auth/login\"#/auth/signin\"#;t' -e 's#/auth/signin\"#/auth/login\"#' $team/providers/p0000.yaml"
median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print(f"{r[sys.argv[2]]:.3f}")' "$@"; }
cpu() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % (r["user"] + r["system"]))' "$1"; }

python3 "$here/growth/gen.py" "$team/providers" 1
echo "building the team crate with 1 provider (the size baseline; the first time, every dependency)"
load
build
base_size=$(stat -c %s "$bin")

results=$WORK/results.md
{
    echo "| N | check (median) | lines emitted | rebuild wall (median of $RUNS) | rebuild CPU (mean) | build script | rustc + link | binary | bytes/provider |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >"$results"
for n in $SIZES; do
    echo "=== N = $n"
    python3 "$here/growth/gen.py" "$team/providers" "$n"
    load
    hyperfine --style basic --warmup 2 --runs 10 --export-json "$WORK/check-$n.json" \
        "$checker check $team/providers"
    check=$(median "$WORK/check-$n.json" median)
    build
    lines=$(cat "$(out_dir)"/otvi/*.rs | wc -l)
    size=$(stat -c %s "$bin")
    load
    hyperfine --style basic --runs "$RUNS" --prepare "$edit" --export-json "$WORK/rebuild-$n.json" \
        "cd $team && cargo build --release --offline -q"
    rebuild=$(median "$WORK/rebuild-$n.json" median)
    rebuild_cpu=$(cpu "$WORK/rebuild-$n.json")
    # Where one rebuild's time goes, by cargo's own account.
    sh -c "$edit"
    rm -rf "$CARGO_TARGET_DIR/cargo-timings"
    build --timings
    read -r script rustc < <(python3 - "$CARGO_TARGET_DIR"/cargo-timings/cargo-timing.html <<'PY'
import json, sys
html = open(sys.argv[1]).read()
start = html.index("const UNIT_DATA = ") + len("const UNIT_DATA = ")
units = json.loads(html[start:html.index("];", start) + 1])
mine = [u for u in units if u["name"] == "team-auth" and u["duration"] > 0]
script = sum(u["duration"] for u in mine if u["mode"] == "run-custom-build")
rustc = sum(u["duration"] for u in mine if u["mode"] != "run-custom-build")
print(f"{script:.1f} {rustc:.1f}")
PY
)
    per=$(( (size - base_size) / (n > 1 ? n - 1 : 1) ))
    echo "| $n | ${check} s | $lines | ${rebuild} s | ${rebuild_cpu} s | ${script} s | ${rustc} s | $size | $per |" >>"$results"
    tail -1 "$results"
done
load
echo
echo "checkout $OTVI ($(git -C "$OTVI" rev-parse --short HEAD 2>/dev/null || echo '?')), $(nproc) cores; base binary (1 provider): $base_size bytes"
cat "$results"
