#!/usr/bin/env bash
# Property-based fuzzing of the running API with Schemathesis against openapi.yaml
# (scripts/fuzz.py runs it; scripts/fuzz.toml and scripts/fuzz_hooks.py configure it).
#
# `make fuzz`: builds, starts its own `cargo lambda watch` (own store, bundles and secret in a
# temp folder), fuzzes for FUZZ_SECONDS (default 600) with a fresh seed, stops the server. The
# reports stay in .local/fuzz/<time>/ (one log, JUnit report and request count per run).
# `make test` (its fuzz step): reuses the watch server of the e2e step, given as FUZZ_ORIGIN,
# FUZZ_SECRET and FUZZ_WATCH_LOG, with a fixed seed and a fixed number of examples.
#
# Knobs: FUZZ_SEED, FUZZ_EXAMPLES, FUZZ_SECONDS, FUZZ_MIN_REQUESTS, FUZZ_WORKERS, FUZZ_ORG,
# FUZZ_USER, FUZZ_REPORT_DIR (see scripts/fuzz.py). Prints `N passed, M failed` last.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
[[ "$VENV" = /* ]] || VENV="$ROOT/$VENV"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

for tool in python schemathesis cargo-lambda; do
    [[ -x "$VENV/bin/$tool" ]] || { echo "missing $VENV/bin/$tool: run 'make venv'" >&2; exit 2; }
done

export FUZZ_ORG=${FUZZ_ORG:-fuzz-org}
export FUZZ_USER=${FUZZ_USER:-fuzz-user}
WATCH_PID=""
OWN_TMP=""
cleanup() {
    local rc=$?
    stop_tree "$WATCH_PID"
    [[ -n "$OWN_TMP" ]] && rm -rf "$OWN_TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "${FUZZ_ORIGIN:-}" ]]; then
    OWN_TMP=$(mktemp -d "${TMPDIR:-/tmp}/workspaces-fuzz.XXXXXX")
    log "building the workspace"
    cargo build --workspace || exit 1
    start_watch "$OWN_TMP" || exit 1
    export FUZZ_ORIGIN=$WATCH_ORIGIN FUZZ_SECRET=$WATCH_SECRET FUZZ_WATCH_LOG=$WATCH_LOG
    export FUZZ_REPORT_DIR=${FUZZ_REPORT_DIR:-$ROOT/.local/fuzz/$(date +%Y%m%dT%H%M%S)}
fi
[[ -n "${FUZZ_SECRET:-}" ]] || { echo "FUZZ_SECRET (the server's HS256 secret) is required with FUZZ_ORIGIN" >&2; exit 2; }

mint() { WORKSPACES_JWT_SECRET="$1" cargo run -q -p workspaces-cli -- token --org "$FUZZ_ORG" --user "$FUZZ_USER"; }
FUZZ_TOKEN=$(mint "$FUZZ_SECRET") || exit 1
# Same claims, signed with a secret the server does not have.
FUZZ_WRONG_TOKEN=$(mint "not-$FUZZ_SECRET") || exit 1
export FUZZ_TOKEN FUZZ_WRONG_TOKEN

"$VENV/bin/python" "$ROOT/scripts/fuzz.py"
