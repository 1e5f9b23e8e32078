#!/usr/bin/env bash
# `make test`: format, lints, template lint, the Rust tests (DynamoDB/S3 ones against a local
# moto server), the end-to-end smoke against `cargo lambda watch`, then Schemathesis fuzzing of
# the same server against openapi.yaml (scripts/fuzz.sh; seeded, FUZZ_EXAMPLES per operation,
# at most FUZZ_TIMEOUT seconds). Every step runs even when an earlier one failed (FAIL_FAST=1
# stops at the first failure); the summary says which passed. moto and the watch server are
# always stopped on the way out.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
[[ "$VENV" = /* ]] || VENV="$ROOT/$VENV"
FAIL_FAST=${FAIL_FAST:-0}
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

for tool in python cfn-lint sam moto_server cargo-lambda schemathesis; do
    [[ -x "$VENV/bin/$tool" ]] || { echo "missing $VENV/bin/$tool: run 'make venv' (make test does it for you)" >&2; exit 2; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/workspaces-test.XXXXXX")
MOTO_PID=""
WATCH_PID=""
cleanup() {
    local rc=$?
    stop_tree "$WATCH_PID"
    stop_tree "$MOTO_PID"
    if [[ "${KEEP_TMP:-0}" = 1 ]]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NAMES=()
OUTCOMES=()
SECONDS_TAKEN=()
# step NAME CMD...: runs CMD, records pass/fail and its time.
step() {
    local name=$1 start rc
    shift
    log "$name: $*"
    start=$(date +%s)
    "$@"
    rc=$?
    NAMES+=("$name")
    SECONDS_TAKEN+=("$(($(date +%s) - start))")
    if [[ $rc -eq 0 ]]; then OUTCOMES+=(pass); else OUTCOMES+=("FAIL (exit $rc)"); fi
    if [[ $rc -ne 0 && "$FAIL_FAST" = 1 ]]; then summary; exit 1; fi
    return 0
}

summary() {
    local i failed=0
    echo
    echo "make test summary:"
    for i in "${!NAMES[@]}"; do
        printf '  %-12s %-16s %5ss\n' "${NAMES[$i]}" "${OUTCOMES[$i]}" "${SECONDS_TAKEN[$i]}"
        [[ "${OUTCOMES[$i]}" = pass ]] || failed=$((failed + 1))
    done
    # One closing line for everything: each test (cargo's and the smoke's) and each check step.
    local counts
    counts=$(cat "$TMP/cargo-test.log" "$TMP/e2e.log" "$TMP/fuzz.log" 2>/dev/null | python3 -c '
import re, sys
p = f = i = 0
for line in sys.stdin:
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
    if m:
        p, f, i = p + int(m[1]), f + int(m[2]), i + int(m[3])
    m = re.fullmatch(r"(\d+) passed, (\d+) failed\n?", line)
    if m:
        p, f = p + int(m[1]), f + int(m[2])
print(p, f, i)')
    read -r tp tf ti <<< "$counts"
    echo "make test steps: $((${#NAMES[@]} - failed)) of ${#NAMES[@]} passed"
    echo "checks: $((tp + ${#NAMES[@]} - failed)) passed, $((tf + failed)) failed, $ti skipped"
    return "$failed"
}

start_moto() {
    local port
    port=$(free_port)
    # moto_server with DynamoDB requests one at a time (scripts/moto_serial.py says why).
    setsid "$VENV/bin/python" "$ROOT/scripts/moto_serial.py" -H 127.0.0.1 -p "$port" > "$TMP/moto.log" 2>&1 &
    MOTO_PID=$!
    if ! wait_http "http://127.0.0.1:$port/moto-api/" 60 "$MOTO_PID"; then
        tail -n 30 "$TMP/moto.log" >&2
        return 1
    fi
    MOTO_URL="http://127.0.0.1:$port"
    echo "moto on $MOTO_URL (pid $MOTO_PID)"
}

cargo_tests() {
    [[ -n "${MOTO_URL:-}" ]] || { echo "moto is not running" >&2; return 1; }
    env AWS_ENDPOINT_URL_DYNAMODB="$MOTO_URL" AWS_ENDPOINT_URL_S3="$MOTO_URL" AWS_ENDPOINT_URL_SQS="$MOTO_URL" \
        AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
        AWS_EC2_METADATA_DISABLED=true WORKSPACES_TEST_REQUIRE_AWS=1 \
        cargo test --workspace --no-fail-fast 2>&1 | tee "$TMP/cargo-test.log"
    return "${PIPESTATUS[0]}"
}

# The watch server e2e and fuzz share (own store, bundles and secret under $TMP/watch).
ensure_watch() {
    [[ -n "$WATCH_PID" ]] && return 0
    cargo build --workspace || return 1
    start_watch "$TMP/watch"
}

e2e() {
    local token rc
    ensure_watch || return 1
    token=$(WORKSPACES_JWT_SECRET="$WATCH_SECRET" cargo run -q -p workspaces-cli -- token --org my-org --user my-user) \
        || return 1
    SMOKE_ORIGIN="$WATCH_ORIGIN" SMOKE_TOKEN="$token" SMOKE_ORG=my-org SMOKE_USER=my-user \
        "$VENV/bin/python" tests/e2e/smoke.py | tee "$TMP/e2e.log"
    rc=${PIPESTATUS[0]}
    if [[ $rc -ne 0 ]]; then
        echo "--- last lines of the watch server's log ---" >&2
        tail -n 60 "$WATCH_LOG" >&2
    fi
    return "$rc"
}

# The bench harness on the debug build, every section at sizes that take seconds (`--smoke`), so
# it builds and runs on every change; its figures mean nothing (`make bench` makes the real ones).
bench_smoke() {
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ -n "${MOTO_URL:-}" ]] || { echo "moto is not running" >&2; return 1; }
    cargo build --workspace || return 1
    env AWS_ENDPOINT_URL_DYNAMODB="$MOTO_URL" AWS_ENDPOINT_URL_S3="$MOTO_URL" AWS_ENDPOINT_URL_SQS="$MOTO_URL" \
        AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
        "$target/debug/bench" --smoke --charts "$TMP/bench-charts"
}

# Schemathesis against the e2e step's server, as another tenant (fuzz-org/fuzz-user). Seeded
# and bounded by example counts, so a run repeats; FUZZ_TIMEOUT caps it whatever the machine.
fuzz() {
    local rc
    ensure_watch || return 1
    FUZZ_ORIGIN="$WATCH_ORIGIN" FUZZ_SECRET="$WATCH_SECRET" FUZZ_WATCH_LOG="$WATCH_LOG" \
        FUZZ_REPORT_DIR="$TMP/fuzz" FUZZ_SEED="${FUZZ_SEED:-20261128}" FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-250}" \
        FUZZ_SECONDS=0 FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-600}" VENV="$VENV" scripts/fuzz.sh | tee "$TMP/fuzz.log"
    rc=${PIPESTATUS[0]}
    [[ $rc -ne 0 ]] && echo "fuzz: logs and JUnit reports in $TMP/fuzz (KEEP_TMP=1 keeps them)" >&2
    stop_tree "$WATCH_PID"
    WATCH_PID=""
    return "$rc"
}

step fmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
step cfn-lint "$VENV/bin/cfn-lint" template.yaml
# Offline too (dummy credentials; checked with the network cut): SAM's own transform and lint.
step sam-validate env VENV="$VENV" scripts/sam-validate.sh
step moto start_moto
step cargo-test cargo_tests
step e2e e2e
step bench-smoke bench_smoke
step fuzz fuzz
summary
