# The two commands a user needs: `make dev` and `make test`.
# Everything they need (the moto emulator, cfn-lint) is installed into .venv
# from PyPI at pinned versions; nothing is installed by hand.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed-$(shell cksum infra/python/requirements.txt | cut -d' ' -f1)

.PHONY: help venv dev test lint fmt fmt-check clippy cfn-lint unit smoke admin

help:
	@echo "make dev    - start the emulator, provision, serve REST on :3000"
	@echo "make test   - fmt, clippy, cfn-lint, unit, integration and end-to-end tests"
	@echo "make lint   - fmt check, clippy -D warnings, cfn-lint"
	@echo "make admin EMAIL=you@example.com - promote a registered user to admin"

$(STAMP): infra/python/requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/python/requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

dev: venv
	@bash infra/scripts/dev.sh

# Promotes a registered user to admin: against the local emulator by default,
# or any endpoint/table given (LOCAL=0 TABLE_NAME=... for a deployed stack).
LOCAL ?= 1
admin:
	@test -n "$(EMAIL)" || { echo "usage: make admin EMAIL=you@example.com" >&2; exit 2; }
	@source infra/scripts/env.sh; \
	  if [ "$(LOCAL)" = 1 ] && [ -z "$${AWS_ENDPOINT_URL:-}" ]; then export AWS_ENDPOINT_URL="http://127.0.0.1:$$MOTO_PORT"; fi; \
	  cargo run --quiet --locked -p infra --bin admin -- promote "$(EMAIL)"

fmt:
	cargo fmt --all

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

cfn-lint: venv
	$(VENV)/bin/cfn-lint template.yaml

lint: fmt-check clippy cfn-lint

# Unit, integration (moto over HTTP, started by the harness on a free port)
# and end-to-end tests through the in-process local gateway.
unit: venv
	cargo test --workspace --locked

# `make dev` itself, end to end: real binaries, real emulator, free ports.
smoke: venv
	@bash infra/scripts/smoke.sh

test: lint unit smoke
