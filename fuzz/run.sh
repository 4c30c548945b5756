#!/usr/bin/env bash
# Runs one fuzz target under AFL++ (cargo-afl, stable toolchain), installing what it needs.
#
#   fuzz/run.sh TARGET [SECONDS]       TARGET: provider_file | login_body; SECONDS default 600
#
# Idempotent: cargo-afl is installed only when missing, AFL++ is built only when it is not
# built for the current rustc, the targets are rebuilt only when a source changed. A second run
# resumes the same output directory (AFL_AUTORESUME). Everything it writes is git-ignored:
#   fuzz/out/TARGET/default/{crashes,hangs,queue,fuzzer_stats}   (FUZZ_OUT overrides fuzz/out)
#   fuzz/target/                                                 (CARGO_TARGET_DIR overrides)
# Runs at the lowest CPU priority (nice 19); FUZZ_NICE overrides.
set -euo pipefail

target="${1:-}"
seconds="${2:-600}"
case "$target" in
provider_file | login_body) ;;
*)
    echo "usage: $0 provider_file|login_body [SECONDS]" >&2
    exit 2
    ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
out="${FUZZ_OUT:-$here/out}/$target"
nice_level="${FUZZ_NICE:-19}"

# 1. cargo-afl (a crates.io package; it brings AFL++'s source with it).
if ! cargo afl --version >/dev/null 2>&1; then
    cargo install --locked cargo-afl
fi
# 2. AFL++ itself, built for this rustc (no LLVM plugins needed: rustc's own SanitizerCoverage
#    instruments the code). Until it is built, `cargo afl fuzz -h` prints no afl-fuzz usage.
usage="$(cargo afl fuzz -h 2>&1 || true)"
if [[ "$usage" != *"based on afl"* ]]; then
    cargo afl config --build
fi
# 3. The targets, instrumented (release, with debug assertions and overflow checks).
(cd "$here" && nice -n "$nice_level" cargo afl build --release --bin "$target")
bin="$CARGO_TARGET_DIR/release/$target"

# 4. Seeds: the shipped, fixture and invalid provider files, or a few JSON bodies; plus every
#    kept regression input.
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
case "$target" in
provider_file)
    cp "$root"/providers/*.yaml "$seeds"/
    for f in "$root"/tests/invalid/*.yaml; do cp "$f" "$seeds/invalid-$(basename "$f")"; done
    for f in "$root"/tests/fixtures/*.yaml; do cp "$f" "$seeds/fixture-$(basename "$f")"; done
    ;;
login_body)
    cp "$here"/seeds/login_body/* "$seeds"/
    ;;
esac
for f in "$here/regressions/$target"/*; do
    [ -f "$f" ] && cp "$f" "$seeds/regression-$(basename "$f")"
done

# 5. Fuzz: 1 s per input at most (-t 1000: a slower input is a hang), the target's
#    dictionary, stop after $seconds (-V).
mkdir -p "$out"
export AFL_SKIP_CPUFREQ=1 AFL_AUTORESUME=1 AFL_NO_UI="${AFL_NO_UI:-1}"
# A container's core_pattern may pipe to a helper AFL++ cannot check; crashes are still caught.
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
# Another AFL++ run may hold the first free CPU; share rather than refuse to start.
export AFL_NO_AFFINITY=1
nice -n "$nice_level" cargo afl fuzz -i "$seeds" -o "$out" -t 1000 \
    -x "$here/dict/$target.dict" -V "$seconds" "$bin"

stats="$out/default/fuzzer_stats"
if [ -f "$stats" ]; then
    grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|bitmap_cvg|edges_found|total_edges|saved_crashes|saved_hangs|stability) ' "$stats"
fi
crashes=$(find "$out/default/crashes" "$out/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
if [ "$crashes" -gt 0 ]; then
    echo "$crashes crashing or hanging inputs in $out/default/{crashes,hangs}" >&2
    exit 1
fi
