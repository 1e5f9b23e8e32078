#!/usr/bin/env bash
# `make bench`: release builds of tools/bench, the function binaries and the hello-world Lambda,
# a local moto for the DynamoDB + S3 backend, then one run that measures both backends and the
# functions' cold starts and prints the figures and their ratios. Not part of CI.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
[[ "$VENV" = /* ]] || VENV="$ROOT/$VENV"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

MOTO_PID=""
trap 'stop_tree "$MOTO_PID"' EXIT
# The cold-start section runs the function binaries and the hello-world baseline. They are built
# in a cargo invocation of their own, as `make build-arm64` builds them: one with the bench would
# unify features with the test kit's (shared's `faults`, more of tokio) and measure other code.
packages=(-p hello-lambda)
for f in functions/*/; do f=${f%/}; packages+=(-p "${f##*/}"); done
log "cargo build --release ${packages[*]}"
cargo build --release -q "${packages[@]}"
log "cargo build --release -p workspaces-tools --bin bench"
cargo build --release -q -p workspaces-tools --bin bench
port=$(free_port)
setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > /dev/null 2>&1 &
MOTO_PID=$!
wait_http "http://127.0.0.1:$port/moto-api/" 60 "$MOTO_PID"
target=${CARGO_TARGET_DIR:-$ROOT/target}
[[ "$target" = /* ]] || target="$ROOT/$target"
AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port" AWS_ENDPOINT_URL_S3="http://127.0.0.1:$port" AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$port" \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    "$target/release/bench" "$@" --charts "$ROOT/docs/bench"
