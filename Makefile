# Workspaces API: local development and checks. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PYTHON    ?= python3
ORG       ?= my-org
USER_NAME ?= my-user
PORT      ?= 9000
# make run STORE=dynamodb: the AWS code path (DynamoDB + S3) on a local compatible server.
STORE     ?= sqlite
# Pinned to the versions the router syntax, lint results and tests were checked with.
PY_TOOLS  ?= cargo-lambda==1.9.2 'moto[server]==5.2.5' cfn-lint==1.58.0 schemathesis==4.32.5 requests
# The Lambda crates (one per route); mint-token in tools/ is not deployed.
FUNCTIONS := $(notdir $(wildcard functions/*))

# Named after the tool list, so a venv made before a tool was added gets it on the next run.
VENV_OK := $(VENV)/.tools-$(shell printf '%s' "$(PY_TOOLS)" | cksum | cut -d' ' -f1)
export VENV

.PHONY: help venv run token invoke test fuzz bench openapi fmt lint build-arm64 clean-local

help:
	@echo "make run          serve the API on 127.0.0.1:\$$PORT (default 9000) with cargo lambda watch, print a token and a curl line"
	@echo "                  STORE=dynamodb: on DynamoDB + S3 (a local moto unless AWS_ENDPOINT_URL_DYNAMODB/_S3 are set)"
	@echo "make test         fmt + clippy + cfn-lint + cargo tests (DynamoDB/S3 against moto) + end-to-end smoke + fuzz"
	@echo "make fuzz         Schemathesis against openapi.yaml on a fresh local stack, fresh seed (FUZZ_SECONDS=600)"
	@echo "make bench        one run, ratios measured in it: routes and jobs on both backends, each function's cold start and size against hello world (BENCHMARKS.md)"
	@echo "make invoke       FN=save-workspace: one fixture event through the Lambda invoke API of a running 'make run'"
	@echo "make token        mint a dev token: make token ORG=acme USER_NAME=ann [ROLE=admin] [TTL=3600]"
	@echo "make openapi      print the request-body schemas the handlers' types define (openapi.yaml must agree)"
	@echo "make fmt | lint   format the code | fmt check + clippy + cfn-lint"
	@echo "make build-arm64  release Lambda builds for arm64 (cargo lambda + zig), into target/lambda/"
	@echo "make clean-local  delete .local/ (the local SQLite store and the dev secret)"

# The Python tools (cargo-lambda, moto, cfn-lint, schemathesis, requests), made once per venv.
venv: $(VENV_OK)
$(VENV_OK):
	@test -x $(VENV)/bin/python || { echo "==> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q $(PY_TOOLS)
	@touch $@

run: venv
	@ORG=$(ORG) USER_NAME=$(USER_NAME) PORT=$(PORT) STORE=$(STORE) scripts/run.sh

# Signed with $WORKSPACES_JWT_SECRET, else the secret `make run` uses (.local/dev-secret).
token:
	@ROOT=$(CURDIR); source scripts/lib.sh; \
	  WORKSPACES_JWT_SECRET=$$(dev_secret) cargo run -q -p workspaces-tools --bin mint-token -- \
	  --org "$(ORG)" --user "$(USER_NAME)" $(if $(ROLE),--role "$(ROLE)") $(if $(TTL),--ttl "$(TTL)")

# Against a running `make run`: the function's API Gateway fixture event (shared/tests/fixtures/
# events/$(FN).json, for my-org/my-user) with a fresh token, through cargo lambda's invoke API.
FN ?= save-workspace
invoke: venv
	@ROOT=$(CURDIR); source scripts/lib.sh; \
	  tok=$$(WORKSPACES_JWT_SECRET=$$(dev_secret) cargo run -q -p workspaces-tools --bin mint-token -- --org my-org --user my-user); \
	  event=$$(mktemp); sed "s/TOKEN/$$tok/" shared/tests/fixtures/events/$(FN).json > $$event; \
	  PATH="$(abspath $(VENV))/bin:$$PATH" cargo lambda invoke $(FN) --invoke-address 127.0.0.1 --invoke-port $(PORT) --data-file $$event; \
	  rc=$$?; rm -f $$event; exit $$rc

test: venv
	@scripts/test.sh

# Longer than the fuzz step of `make test`, with a fresh seed each run (printed, and
# FUZZ_SEED=<n> repeats one): FUZZ_SECONDS of fuzzing in all, FUZZ_EXAMPLES per operation
# and round. Reports stay in .local/fuzz/<time>/.
FUZZ_SECONDS  ?= 600
FUZZ_EXAMPLES ?= 1000
fuzz: venv
	@FUZZ_SEED=$${FUZZ_SEED:-$$(python3 -c 'import secrets; print(secrets.randbelow(2**31))')} \
	  FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) scripts/fuzz.sh

# Not part of CI: release builds of every function and the bench, then minutes of measuring
# (`make test` runs `bench --smoke` on the debug build instead).
bench: venv
	@scripts/bench.sh $(BENCH_ARGS)

# The request bodies as the body types define them; tests/tests/openapi_generated.rs holds
# openapi.yaml's requestBody schemas to the same properties, types, nullability and required.
openapi:
	@cargo run -q -p workspaces-tools --features openapi --bin gen-openapi

fmt:
	cargo fmt --all

lint: venv
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml

# Not part of CI: needs zig (from PyPI) and the aarch64 Rust target.
build-arm64: venv
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q ziglang
	PATH="$(abspath $(VENV))/bin:$$PATH" cargo lambda build --release --arm64 $(addprefix -p ,$(FUNCTIONS))

clean-local:
	rm -rf .local
