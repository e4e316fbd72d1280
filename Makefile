# The two commands of the README:
#   make demo   run talky (starts PostgreSQL and Redis first)
#   make test   fmt check, clippy -D warnings, every test, short API fuzz run
SHELL := /bin/bash
CARGO ?= cargo
export DATABASE_URL ?= postgres://talky:talky@127.0.0.1:5432/talky
export REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: test demo services fmt lint fuzz

services:
	@bash scripts/services.sh

test: services
	@bash scripts/test.sh

demo: services
	@bash scripts/demo.sh

fmt:
	@$(CARGO) fmt --all

# Property-based API fuzzing against the live OpenAPI document (schemathesis);
# `make test` runs a short version of it (scripts/fuzz.sh --short).
fuzz: services
	@bash scripts/fuzz.sh
