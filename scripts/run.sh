#!/usr/bin/env bash
# `make run`: serve the API locally with `cargo lambda watch` (rebuilds on code changes).
#   ORG / USER_NAME  whose token to print (default my-org / my-user, the contract's example)
#   PORT             where to listen (default 9000)
#   WORKSPACES_STORE default sqlite://<repo>/.local/workspaces.db
#   WORKSPACES_BUNDLES default file://<repo>/.local/bundles
#   WORKSPACES_JWT_SECRET default: kept in .local/dev-secret
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
[[ "$VENV" = /* ]] || VENV="$ROOT/$VENV"
ORG=${ORG:-my-org}
USER_NAME=${USER_NAME:-my-user}
PORT=${PORT:-9000}
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

[[ -x "$VENV/bin/cargo-lambda" ]] || { echo "no cargo-lambda in $VENV: run 'make venv' (make run does it for you)" >&2; exit 1; }

WORKSPACES_JWT_SECRET=$(dev_secret)
export WORKSPACES_JWT_SECRET
mkdir -p "$ROOT/.local"
# Absolute: the function processes need not run in the repo folder.
export WORKSPACES_STORE=${WORKSPACES_STORE:-sqlite://$ROOT/.local/workspaces.db}
export WORKSPACES_BUNDLES=${WORKSPACES_BUNDLES:-file://$ROOT/.local/bundles}
export RUST_LOG=${RUST_LOG:-info}

log "building the workspace (so the first request does not wait for a compile)"
cargo build --workspace

TOKEN=$(cargo run -q -p workspaces-tools --bin mint-token -- --org "$ORG" --user "$USER_NAME" --ttl 86400)
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
exec cargo lambda watch -A 127.0.0.1 -P "$PORT"
