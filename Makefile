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
# ziglang is cargo-lambda's cross linker for the arm64 builds (pinned, not left to its resolver);
# aws-sam-cli is `sam` (make deploy, and sam validate in make test), resolved together with the rest.
PY_TOOLS  ?= cargo-lambda==1.9.2 ziglang==0.17.1 'moto[server]==5.2.5' cfn-lint==1.58.0 schemathesis==4.32.5 requests \
             aws-sam-cli==1.170.0
# The Lambda crates (one per route); the `workspaces` CLI (cli/) and tools/ are not deployed.
FUNCTIONS := $(notdir $(wildcard functions/*))
# What template.yaml deploys: every function but the local-only bundle links (routes.rs
# local_only; in AWS they are presigned S3 URLs).
DEPLOYED  := $(filter-out download-bundle upload-bundle,$(FUNCTIONS))
# Release arm64 builds go to the clone's target/lambda/<fn>/bootstrap whatever CARGO_TARGET_DIR
# says; sam build gets the same directory (its builder runs cargo lambda once per function and
# copies from that target dir), so after make build its runs are no-ops.
LAMBDA_TARGET_DIR ?= $(CURDIR)/target
# sam build runs cargo lambda (and zig) from PATH; Rust through cargo lambda is a beta builder.
SAM_ENV   := PATH="$(abspath $(VENV))/bin:$$PATH" CARGO_TARGET_DIR="$(LAMBDA_TARGET_DIR)" \
             SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 SAM_CLI_TELEMETRY=0

# Named after the tool list, so a venv made before a tool was added gets it on the next run.
VENV_OK := $(VENV)/.tools-$(shell printf '%s' "$(PY_TOOLS)" | cksum | cut -d' ' -f1)
export VENV

.PHONY: help venv run token invoke test fuzz bench openapi fmt lint build build-arm64 sam-build deploy \
        validate clean-local

help:
	@echo "make run          serve the API on 127.0.0.1:\$$PORT (default 9000) with cargo lambda watch, print a token and a curl line"
	@echo "                  STORE=dynamodb: on DynamoDB + S3 (a local moto unless AWS_ENDPOINT_URL_DYNAMODB/_S3 are set)"
	@echo "make test         fmt + clippy + cfn-lint + sam validate + cargo tests (DynamoDB/S3 against moto) + end-to-end smoke + fuzz"
	@echo "make fuzz         Schemathesis against openapi.yaml on a fresh local stack, fresh seed (FUZZ_SECONDS=600)"
	@echo "make bench        one run, ratios measured in it: routes and jobs on both backends, each function's cold start and size against hello world (docs/benchmarks.md)"
	@echo "make invoke       FN=<any function>: its fixture event through the Lambda invoke API of a running 'make run'"
	@echo "make token        mint a dev token: make token ORG=acme USER_NAME=ann [ROLE=admin] [TTL=3600]"
	@echo "make openapi      print the request-body schemas the handlers' types define (openapi.yaml must agree)"
	@echo "make fmt | lint   format the code | fmt check + clippy + cfn-lint + sam validate --lint"
	@echo "make build        release arm64 builds of the deployed functions (cargo lambda + zig), into target/lambda/<fn>/bootstrap"
	@echo "make deploy       sam build + sam deploy (guided the first time, samconfig.toml after); docs/deploy.md"
	@echo "make validate     cfn-lint and sam validate --lint on template.yaml (offline, no AWS account)"
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
	  WORKSPACES_JWT_SECRET=$$(dev_secret) cargo run -q -p workspaces-cli -- token \
	  --org "$(ORG)" --user "$(USER_NAME)" $(if $(ROLE),--role "$(ROLE)") $(if $(TTL),--ttl "$(TTL)")

# Against a running `make run`: the function's fixture event (shared/tests/fixtures/events/
# $(FN).json, for my-org/my-user; tests/tests/fixture_events.rs keeps one per function) with a
# fresh token, through cargo lambda's invoke API. Route functions take an API Gateway event,
# jobs-worker an SQS batch (of a job that does not exist: acknowledged), compact-tables a
# Scheduled Event (nothing to compact on SQLite); the watch server runs any of them.
# download-bundle streams its answer, which cargo lambda invoke cannot read (it reports an
# "invalid error payload"), so its fixture goes as the HTTP request it stands for.
FN ?= save-workspace
invoke: venv
	@test -f shared/tests/fixtures/events/$(FN).json || { echo "no fixture event for FN=$(FN); one of: $(FUNCTIONS)" >&2; exit 2; }
	@if [[ "$(FN)" = download-bundle ]]; then \
	  url=$$(python3 -c 'import json, sys; e = json.load(open(sys.argv[1])); print(e["rawPath"] + "?" + e["rawQueryString"])' \
	    shared/tests/fixtures/events/$(FN).json); \
	  curl -sS -i "http://127.0.0.1:$(PORT)$$url"; echo; \
	else \
	  ROOT=$(CURDIR); source scripts/lib.sh; \
	  tok=$$(WORKSPACES_JWT_SECRET=$$(dev_secret) cargo run -q -p workspaces-cli -- token --org my-org --user my-user); \
	  event=$$(mktemp); sed "s/TOKEN/$$tok/" shared/tests/fixtures/events/$(FN).json > $$event; \
	  PATH="$(abspath $(VENV))/bin:$$PATH" cargo lambda invoke $(FN) --invoke-address 127.0.0.1 --invoke-port $(PORT) --data-file $$event; \
	  rc=$$?; rm -f $$event; exit $$rc; \
	fi

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
	VENV=$(VENV) scripts/sam-validate.sh

# Not part of CI (tens of minutes cold on 2 cores). zig comes with the venv; the aarch64 Rust
# target is added here (rust-toolchain.toml lists it, but rustup adds listed targets only when
# it installs the toolchain itself). FUNCTIONS_TO_BUILD=save-workspace builds one.
FUNCTIONS_TO_BUILD ?= $(DEPLOYED)
build: venv
	@if command -v rustup >/dev/null; then rustup target add aarch64-unknown-linux-gnu; \
	  else echo "no rustup: the aarch64-unknown-linux-gnu std must already be installed"; fi
	PATH="$(abspath $(VENV))/bin:$$PATH" CARGO_TARGET_DIR="$(LAMBDA_TARGET_DIR)" \
	  cargo lambda build --release --arm64 $(addprefix -p ,$(FUNCTIONS_TO_BUILD))
build-arm64: build

# template.yaml's rust-cargolambda Metadata: one cargo lambda build per function, into
# .aws-sam/build/ (after make build, each is a no-op).
sam-build: build
	$(SAM_ENV) $(VENV)/bin/sam build --beta-features

# The first run asks for the stack name, region and parameters (docs/deploy.md) and saves them
# in samconfig.toml; later runs deploy with those. DEPLOY_ARGS are passed on to sam deploy.
deploy: sam-build
	@if [[ -f samconfig.toml ]]; then \
	  $(SAM_ENV) $(VENV)/bin/sam deploy $(DEPLOY_ARGS); \
	else \
	  $(SAM_ENV) $(VENV)/bin/sam deploy --guided --capabilities CAPABILITY_IAM $(DEPLOY_ARGS); \
	fi

# Both offline (no AWS account); scripts/test.sh runs the same two in its lint steps.
validate: venv
	$(VENV)/bin/cfn-lint template.yaml
	VENV=$(VENV) scripts/sam-validate.sh

clean-local:
	rm -rf .local
