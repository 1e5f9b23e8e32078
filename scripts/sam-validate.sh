#!/usr/bin/env bash
# `sam validate --lint` on template.yaml without an AWS account: it transforms the SAM template
# and lints the result locally (checked to pass with the network cut: `unshare -n`). Dummy
# credentials and a region so it never picks up, or asks for, real ones; no telemetry.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
[[ "$VENV" = /* ]] || VENV="$ROOT/$VENV"
exec env -u AWS_PROFILE AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_SESSION_TOKEN= \
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0 \
    "$VENV/bin/sam" validate --lint --template "$ROOT/template.yaml"
