#!/usr/bin/env bash
# `make run`: serve the API locally with `cargo lambda watch` (rebuilds on code changes).
#   ORG / USER_NAME  whose token to print (default my-org / my-user, the contract's example)
#   PORT             where to listen (default 9000)
#   STORE            sqlite (default: SQLite file + bundle folder in .local/) or dynamodb (the AWS
#                    code path: DynamoDB + S3 on a local compatible server, started here unless
#                    AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_S3 are set; table and bucket
#                    created if missing; moto keeps its data in memory, so it is gone on Ctrl-C)
#   WORKSPACES_STORE default sqlite://<repo>/.local/workspaces.db (dynamodb://workspaces-local)
#   WORKSPACES_BUNDLES default file://<repo>/.local/bundles (s3://workspaces-local-bundles)
#   WORKSPACES_JWT_SECRET default: kept in .local/dev-secret
#   WORKSPACES_JOBS_QUEUE default sqlite://<repo>/.local/jobs-queue.db (an SQS queue on the server)
# Beside the watch server, jobs-dispatch feeds the jobs worker from the queue the way Lambda's
# SQS event source mapping would (up to 4 invocations at a time), so "async": true jobs run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
[[ "$VENV" = /* ]] || VENV="$ROOT/$VENV"
ORG=${ORG:-my-org}
USER_NAME=${USER_NAME:-my-user}
PORT=${PORT:-9000}
STORE=${STORE:-sqlite}
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

[[ -x "$VENV/bin/cargo-lambda" ]] || { echo "no cargo-lambda in $VENV: run 'make venv' (make run does it for you)" >&2; exit 1; }

WORKSPACES_JWT_SECRET=$(dev_secret)
export WORKSPACES_JWT_SECRET
mkdir -p "$ROOT/.local"
MOTO_PID=""
DISPATCH_PID=""
trap 'stop_tree "$DISPATCH_PID"; stop_tree "$MOTO_PID"' EXIT
case "$STORE" in
    sqlite)
        # Absolute: the function processes need not run in the repo folder.
        export WORKSPACES_STORE=${WORKSPACES_STORE:-sqlite://$ROOT/.local/workspaces.db}
        export WORKSPACES_BUNDLES=${WORKSPACES_BUNDLES:-file://$ROOT/.local/bundles}
        export WORKSPACES_JOBS_QUEUE=${WORKSPACES_JOBS_QUEUE:-sqlite://$ROOT/.local/jobs-queue.db}
        ;;
    dynamodb)
        if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" || -z "${AWS_ENDPOINT_URL_S3:-}" || -z "${AWS_ENDPOINT_URL_SQS:-}" ]]; then
            moto_port=$(free_port)
            log "starting moto (DynamoDB + S3 + SQS) on 127.0.0.1:$moto_port"
            setsid "$VENV/bin/python" "$ROOT/scripts/moto_serial.py" -H 127.0.0.1 -p "$moto_port" > "$ROOT/.local/moto.log" 2>&1 &
            MOTO_PID=$!
            wait_http "http://127.0.0.1:$moto_port/moto-api/" 60 "$MOTO_PID" || { tail -n 20 "$ROOT/.local/moto.log" >&2; exit 1; }
            export AWS_ENDPOINT_URL_DYNAMODB=${AWS_ENDPOINT_URL_DYNAMODB:-http://127.0.0.1:$moto_port}
            export AWS_ENDPOINT_URL_S3=${AWS_ENDPOINT_URL_S3:-http://127.0.0.1:$moto_port}
            export AWS_ENDPOINT_URL_SQS=${AWS_ENDPOINT_URL_SQS:-http://127.0.0.1:$moto_port}
        fi
        # A local server takes any credentials; the SDK only needs some.
        export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
        export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
        export WORKSPACES_STORE=${WORKSPACES_STORE:-dynamodb://workspaces-local}
        export WORKSPACES_BUNDLES=${WORKSPACES_BUNDLES:-s3://workspaces-local-bundles}
        # moto's queue URLs are <endpoint>/<its default account>/<name>.
        export WORKSPACES_JOBS_QUEUE=${WORKSPACES_JOBS_QUEUE:-${AWS_ENDPOINT_URL_SQS%/}/123456789012/workspaces-local-jobs}
        ;;
    *) echo "STORE must be sqlite or dynamodb (got '$STORE')" >&2; exit 2 ;;
esac
export RUST_LOG=${RUST_LOG:-info}

log "building the workspace (so the first request does not wait for a compile)"
cargo build --workspace
if [[ "$STORE" = dynamodb ]]; then
    log "creating the table, bucket and queue if missing ($WORKSPACES_STORE, $WORKSPACES_BUNDLES, $WORKSPACES_JOBS_QUEUE)"
    cargo run -q -p workspaces-tools --bin provision-local
fi

TOKEN=$(cargo run -q -p workspaces-cli -- token --org "$ORG" --user "$USER_NAME" --ttl 86400)
BASE="http://127.0.0.1:$PORT/jarvispy/$ORG/$USER_NAME/api/v1"
cat <<MSG

  Workspaces API on http://127.0.0.1:$PORT   store: $WORKSPACES_STORE
  Token for $ORG/$USER_NAME, valid 24 h ('make token ORG=.. USER_NAME=..' mints others):

$TOKEN

  Try it (from another terminal):

curl -s -X POST "$BASE/workspaces/save" -H "Content-Type: application/json" -H "Authorization: Bearer $TOKEN" -d '{"name": "My first workspace"}'

curl -s "$BASE/workspaces/list?scope=user" -H "Authorization: Bearer $TOKEN"

  Ctrl-C stops the server.

MSG

export PATH="$VENV/bin:$PATH"
# Retries until the watch server answers (and across its rebuilds).
setsid cargo run -q -p workspaces-tools --bin jobs-dispatch -- --invoke "http://127.0.0.1:$PORT" --concurrency 4 &
DISPATCH_PID=$!
# Not exec: on Ctrl-C the trap stops the dispatcher and the moto this script started.
cargo lambda watch -A 127.0.0.1 -P "$PORT" --concurrency 4
