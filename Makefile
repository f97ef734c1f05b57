# nats-actors: `make test` (what CI runs) and `make demo` (see it work), on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
# Tests, examples and benches find nats-server here when it is not on PATH already.
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: test demo service-demo bench nats-server python-env asyncapi-env fmt lint doc

PYTHON_ENV := $(CURDIR)/.tools/venv

## Installs nats-server into .tools when PATH has none (or one older than 2.10).
nats-server:
	@scripts/ensure-nats-server

## A virtualenv with nats-py, the OpenTelemetry SDK and prometheus_client (its text parser), for
## the cross-language tests.
python-env:
	@test -x $(PYTHON_ENV)/bin/python || python3 -m venv $(PYTHON_ENV)
	@$(PYTHON_ENV)/bin/python -c "import nats, opentelemetry.sdk, prometheus_client" 2>/dev/null || \
		$(PYTHON_ENV)/bin/python -m pip install --quiet --disable-pip-version-check nats-py opentelemetry-sdk prometheus-client

## The AsyncAPI project's parser (@asyncapi/parser, versions pinned by tests/asyncapi's lock
## file), which tests/asyncapi.rs validates the generated documents with.
ASYNCAPI_ENV := $(CURDIR)/.tools/asyncapi
asyncapi-env:
	@mkdir -p $(ASYNCAPI_ENV)
	@cp tests/asyncapi/package.json tests/asyncapi/package-lock.json tests/asyncapi/validate.mjs $(ASYNCAPI_ENV)/
	@test -d $(ASYNCAPI_ENV)/node_modules/@asyncapi/parser || \
		(cd $(ASYNCAPI_ENV) && npm ci --silent --no-audit --no-fund)

## Format check, clippy with -D warnings, every test (unit, integration, UI, doc), examples and
## benches built, and the service_api, task_queue, event_driven, kv_objects and bank examples run to completion
## (each starts its own server); then the build without default features (core NATS only):
## clippy, its unit tests, and its example run; each optional feature built alone; rustdoc with warnings as errors; and a new crate
## made from the README's Cargo.toml block and its complete example, built outside the workspace.
test: nats-server python-env asyncapi-env
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(CARGO) test --workspace --all-features
	$(CARGO) build --workspace --examples
	$(CARGO) run --quiet --example service_api > /dev/null
	$(CARGO) run --quiet --example task_queue > /dev/null
	$(CARGO) run --quiet --example event_driven > /dev/null
	$(CARGO) run --quiet --example kv_objects > /dev/null
	$(CARGO) run --quiet --example bank > /dev/null
	$(CARGO) bench --workspace --no-run
	$(CARGO) clippy -p nats-actors --no-default-features --features testing --all-targets -- -D warnings
	$(CARGO) test -p nats-actors --no-default-features --features testing --lib
	$(CARGO) run --quiet -p nats-actors --no-default-features --features testing --example slim > /dev/null
	for f in jetstream service compression; do $(CARGO) check --quiet -p nats-actors --no-default-features --features $$f || exit 1; done
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --quiet --no-deps -p nats-actors -p nats-actors-macros --all-features
	scripts/check-readme-crate

## Starts a throwaway server (unless NATS_URL is set) and runs actors that exchange events and a request.
demo: nats-server
	$(CARGO) run --example demo

## A service: typed client calls and its $SRV.PING/INFO/STATS answers (throwaway server unless NATS_URL).
service-demo: nats-server
	$(CARGO) run --example service_api

## Side-by-side benchmarks against raw async-nats (release build; takes a few minutes).
bench: nats-server
	$(CARGO) bench --bench core
	$(CARGO) bench --bench jetstream
	$(CARGO) bench --bench kv_objects

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

doc:
	$(CARGO) doc --workspace --no-deps --all-features
